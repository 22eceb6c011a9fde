"""The adapters' HTTP/1.1 client: pooled keep-alive connections on asyncio's ``Protocol``,
answers parsed by httptools.

Why not aiohttp's ``ClientSession``, which the adapters used before (and httpx before it):
the runner's gateway makes one upstream call per client call, and under a paced 200 calls a
second aiohttp's client cost about 0.5 ms of CPU per call on the 2-core development machine,
half the latency the gateway may add. Moving to this client took the gateway's CPU per call
from 1.3 to 0.8 ms and its added median latency from 1.2 to 0.8 ms; in a hot loop an
adapter's whole call now costs half a bare aiohttp call (``bench/README.md``). The adapters need one thing from HTTP:
a request to one origin with a JSON body, and the answer whole or as a stream of bytes.

What it does:

- keep-alive connections pooled per origin (and proxy), at most ``max_connections`` in use
  at once per client, reused last-in-first-out; idle ones are dropped after ``IDLE_TIMEOUT`` or once the server closed
  them; a request is never sent twice (see ``_exchange``);
- TLS verified against the given context (SNI and host name check), within the connect
  timeout;
- a proxy: absolute-form requests for ``http://`` origins, a ``CONNECT`` tunnel for
  ``https://`` ones, ``Proxy-Authorization`` from the proxy URL's credentials;
- answers framed by ``Content-Length``, chunked, or by the connection's end; streamed bodies
  with back-pressure (reading pauses while ``STREAM_BUFFER`` bytes wait unread).

What it leaves out on purpose: redirects (never followed: a provider's redirect is an error
worth seeing), compression (never asked for), cookies, HTTP/2. Failures are ``CannotConnect``
(nothing was sent) and ``ConnectionBroke`` (the exchange broke off or was malformed); the
caller's asyncio deadline bounds the whole exchange.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

IDLE_TIMEOUT = 15.0
"""Seconds an idle connection is kept for reuse (aiohttp's default); servers close theirs
after 5 to 120 seconds."""
STREAM_BUFFER = 256 * 1024
"""Unread bytes of a streamed answer at which reading from the socket pauses."""
USER_AGENT = "llmagents"


class HttpClientError(Exception):
    """An exchange that produced no HTTP answer."""


class CannotConnect(HttpClientError):
    """No connection to the origin (or through the proxy): nothing was sent."""


class ConnectionBroke(HttpClientError):
    """The connection closed, or the answer was malformed, before the answer ended."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names; a repeated header's values joined with ``", "``."""
    body: bytes


@dataclass(slots=True)
class StreamedAnswer:
    status: int
    headers: dict[str, str]
    _connection: _Connection

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; ``ConnectionBroke`` if it ends before the answer did."""
        while (chunk := await self._connection.read()) is not None:
            yield chunk

    async def read(self) -> bytes:
        return await self._connection.read_all()


@dataclass(slots=True, frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int
    proxy: URL | None


class HttpClient:
    """Requests to any origin over pooled connections; close with ``aclose()``.

    The pool belongs to the event loop of the first request; a request from another loop
    (a test's, a second ``asyncio.run``) starts a fresh pool rather than failing.
    """

    def __init__(self, *, tls: ssl.SSLContext, headers: dict[str, str], proxy: str | None,
                 connect_timeout: float, max_connections: int) -> None:  # fmt: skip
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._proxy = URL(proxy) if proxy else None
        fixed = {"user-agent": USER_AGENT, "accept": "*/*", **headers}
        for name, value in fixed.items():
            if "\r" in value or "\n" in value:  # it would end the header and start another
                raise ValueError(f"the HTTP header {name} has a line break in its value")
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._slots: asyncio.Semaphore | None = None

    async def request(self, method: str, url: URL, *, body: bytes | None = None) -> Answer:
        origin, message = self._prepare(method, url, body)
        async with self._slots_for_loop():
            connection = await self._exchange(origin, message)
            try:
                data = await connection.read_all()
            except BaseException:
                connection.close()
                raise
            self._release(origin, connection)
        return Answer(connection.status, connection.headers, data)

    @asynccontextmanager
    async def stream(self, method: str, url: URL, *,
                     body: bytes | None = None) -> AsyncIterator[StreamedAnswer]:  # fmt: skip
        """The answer once its head arrived; its body is read from ``chunks()``. Leaving the
        block early closes the connection instead of reading the rest."""
        origin, message = self._prepare(method, url, body)
        async with self._slots_for_loop():
            connection = await self._exchange(origin, message)
            try:
                yield StreamedAnswer(connection.status, connection.headers, connection)
            finally:
                self._release(origin, connection)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # -- machinery ----------------------------------------------------------------------

    def _slots_for_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:
            self._loop = loop
            self._idle = {}  # transports of another loop cannot be used (or closed) here
            self._slots = asyncio.Semaphore(self.max_connections)
        return self._slots

    def _prepare(self, method: str, url: URL, body: bytes | None) -> tuple[_Origin, bytes]:
        """Where ``url`` is served from, and the request's bytes."""
        origin = _Origin(url.scheme, url.raw_host or "", url.port or 0, self._proxy)
        if origin.scheme not in ("http", "https") or not origin.host:
            raise CannotConnect(f"cannot request {url}: not an http(s) URL")
        proxy = self._proxy
        forward = proxy is not None and url.scheme == "http"  # https goes through a tunnel
        target = str(url.with_fragment(None)) if forward else url.raw_path_qs
        head = f"{method} {target} HTTP/1.1\r\nhost: {url.host_port_subcomponent}\r\n{self._fixed}"
        if forward and proxy is not None and proxy.user is not None:
            head += f"proxy-authorization: {_basic(proxy)}\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        return origin, (head + "\r\n").encode("latin-1") + (body or b"")

    def _release(self, origin: _Origin, connection: _Connection) -> None:
        """Back to the pool when its answer was read to the end and it can carry more."""
        if connection.complete and connection.reusable and not connection.closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(origin, []).append(connection)
        else:
            connection.close()

    async def _exchange(self, origin: _Origin, message: bytes) -> _Connection:
        """Sends ``message`` and waits for the head of the answer.

        Never sent twice: a connection the server closed while idle is seen closed before
        reuse, and a request that broke off may have reached the provider (and been charged),
        so whether to try again is the engine's decision, not the transport's."""
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        connection = None
        while idle and connection is None:
            connection = idle.pop()
            if connection.closed or now - connection.idle_since > IDLE_TIMEOUT:
                connection.close()
                connection = None
        if connection is None:
            connection = await self._connect(origin)
        try:
            connection.send(message)
            await connection.head()
        except BaseException:
            connection.close()
            raise
        return connection

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        target = origin.proxy or URL.build(scheme=origin.scheme, host=origin.host,
                                           port=origin.port)  # fmt: skip
        host, port = target.raw_host or "", target.port or 0
        tls_direct = origin.proxy is None and origin.scheme == "https"
        where = f"{origin.host}:{origin.port}" + (f" through proxy {host}:{port}"
                                                  if origin.proxy else "")  # fmt: skip
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, connection = await loop.create_connection(
                    _Connection, host, port,
                    ssl=self.tls if tls_direct else None,
                    server_hostname=origin.host if tls_direct else None,
                )  # fmt: skip
                if origin.proxy is not None and origin.scheme == "https":
                    await connection.tunnel(origin, _basic(origin.proxy)
                                            if origin.proxy.user is not None else None)
                    tls_transport = await loop.start_tls(
                        transport, connection, self.tls, server_hostname=origin.host
                    )
                    if tls_transport is None:
                        raise OSError("TLS did not start")
                    connection.use(cast(asyncio.Transport, tls_transport))
        except BaseException as error:
            if connection is not None:
                connection.close()
            if isinstance(error, TimeoutError):
                raise CannotConnect(f"cannot connect to {where} within "
                                    f"{self.connect_timeout:g}s") from None  # fmt: skip
            if isinstance(error, ssl.SSLCertVerificationError):
                raise CannotConnect(f"cannot connect to {where}: TLS certificate not "
                                    f"trusted ({error.verify_message})") from None  # fmt: skip
            if isinstance(error, OSError):
                reason = error.strerror or str(error) or type(error).__name__
                raise CannotConnect(f"cannot connect to {where}: {reason}") from None
            raise
        return connection


def _basic(proxy: URL) -> str:
    credentials = f"{proxy.user or ''}:{proxy.password or ''}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


class _Connection(asyncio.Protocol):
    """One connection: sends a request, parses its answer, hands out the body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self.reusable = False
        self._broke: ConnectionBroke | None = None
        self._head_done = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._whole = False
        self._waiter: asyncio.Future[None] | None = None
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_bytes = b""

    # -- the exchange -------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(message)

    async def head(self) -> None:
        while not self._head_done:
            await self._wait()

    async def read_all(self) -> bytes:
        self._whole = True  # all of it is wanted now: reading must not pause
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        while not self.complete:
            await self._wait()
        rest = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return rest

    async def read(self) -> bytes | None:
        """The next piece of the body, ``None`` at its end."""
        while not self._chunks:
            if self.complete:
                return None
            await self._wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < STREAM_BUFFER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    async def _wait(self) -> None:
        if self._broke is not None:
            raise self._broke
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._broke is not None and not self._chunks and not self.complete:
            raise self._broke

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def tunnel(self, origin: _Origin, authorization: str | None) -> None:
        """Asks the proxy for a tunnel to ``origin``; ``OSError`` when it refuses."""
        assert self.transport is not None
        authority = f"{origin.host}:{origin.port}"
        request = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
        if authorization is not None:
            request += f"proxy-authorization: {authorization}\r\n"
        self._tunnel = asyncio.get_running_loop().create_future()
        self.transport.write((request + "\r\n").encode("latin-1"))
        head = await self._tunnel
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "200":
            raise OSError(f"the proxy refused the tunnel: {status_line or 'no answer'}")

    def use(self, transport: asyncio.Transport) -> None:
        """Continues on ``transport`` (TLS over the tunnel) instead of the raw one."""
        self.transport = transport
        self._parser = httptools.HttpResponseParser(self)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(OSError("the proxy closed the connection"))
        if self._head_done and not self.complete and self._delimited_by_close():
            self.complete = True  # an answer without length ends with its connection
        elif not self.complete and self._broke is None:
            reason = f" ({exc})" if exc else ""
            self._broke = ConnectionBroke(f"the server closed the connection before the answer "
                                          f"ended{reason}")  # fmt: skip
        self._wake()

    def _delimited_by_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel_bytes += data
            if b"\r\n\r\n" in self._tunnel_bytes:
                self._tunnel.set_result(self._tunnel_bytes)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._broke = ConnectionBroke(f"malformed HTTP answer: {error}")
            self.reusable = False
            self.close()
            self._wake()

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer; the real one follows
            self.headers = {}
            return
        self.status = status
        self._head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= STREAM_BUFFER and not (self._paused or self._whole) and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self._head_done:
            return  # the end of an interim answer
        self.complete = True
        self.reusable = self._parser.should_keep_alive() and not self.closed
        self._wake()
