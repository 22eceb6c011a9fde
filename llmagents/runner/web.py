"""The gateway's HTTP server: uvicorn (httptools, on the runner's uvloop) around a bare ASGI
application, and the small types the gateway's routes speak.

Routes take a ``Request`` and return a ``Response`` or a ``StreamingResponse``; ``App`` turns
ASGI's scope and messages into them and back, so route code does not know the server.

Why uvicorn and not the project's former own HTTP/1.1 server: measured side by side in one run
(``bench/gateway.py``, ``bench/README.md``), the own server saved less than the 0.3 ms at the
median that would have justified keeping protocol code of our own. uvicorn leaves four things
to its user, done here:

- bounds on the request head. uvicorn's httptools protocol buffers a head without end (so
  does httptools itself, inside a header value it has not finished), so ``_Protocol`` counts
  the bytes of an unfinished head as they arrive and answers 431 at ``MAX_HEAD``. Nor does
  uvicorn time a head (a client may dribble one byte at a time, "slowloris", or connect and
  say nothing, holding a connection for ever): a head unfinished ``HEAD_TIMEOUT`` seconds
  after its first byte is answered 408, and a connection silent for ``KEEPALIVE_TIMEOUT``
  seconds from its opening is closed;
- HTTP/1.0 and 1.1 only: other versions in the request line (0.9, 2.0) get a 505;
- an ``Upgrade`` request is answered once, as plain HTTP/1.1 (a server may ignore Upgrade),
  and the connection closes after it, since the parser cannot go on past an upgrade;
- a bound on the request body (``max_body``, 413), in ``App``.

A refusal waits for the answers already in progress on the connection, then closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
"""Bytes of request line and headers a request may have."""
KEEPALIVE_TIMEOUT = 75
"""Seconds an idle connection stays open (aiohttp's default; uvicorn's is 5); also how long a
new connection may wait before the first byte of its first request."""
HEAD_TIMEOUT = 10.0
"""Seconds from the first byte of a request to the end of its head (nginx's
``client_header_timeout`` is 60; the gateway's clients are on the pod's loopback)."""
HEAD_CHECK_INTERVAL = 1.0
"""Seconds between looks for heads past ``HEAD_TIMEOUT``: one sweep over the connections
rather than a timer armed and cancelled for every request."""
LINGER = 2.0
"""Seconds a refused connection is read (and what arrives dropped) before it is closed."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Lower-case names; a repeated header's values joined with ``", "``."""
    body: bytes
    http_version: str


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamingResponse:
    """An answer whose body is written as the generator yields it.

    The generator is closed (``GeneratorExit`` at its ``yield``) when the client goes away.
    """

    body: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]
ErrorResponse = Callable[[int, str], Response]
"""How the server words its own refusals (400, 413, 431, 500, 505) for this API's clients."""


def plain_error(status: int, message: str) -> Response:
    return Response(status, message.encode(), content_type="text/plain; charset=utf-8")


# -- the ASGI application ---------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class App:
    """ASGI 3 application around one handler."""

    def __init__(
        self, handler: Handler, *, name: str, max_body: int, error_response: ErrorResponse
    ) -> None:
        self.handler = handler
        self.name = name
        self.max_body = max_body
        self.error_response = error_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and websockets are not served
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")  # lower-cased by uvicorn
            value = raw_value.decode("latin-1")
            previous = headers.get(name)
            headers[name] = value if previous is None else f"{previous}, {value}"
        body = await self._body(headers, receive)
        if isinstance(body, Response):
            await _send(send, body, close=True)
            return
        request = Request(
            method=scope["method"],
            path=scope["raw_path"].decode("utf-8", "replace"),
            query=scope["query_string"].decode("utf-8", "replace"),
            headers=headers,
            body=body,
            http_version=scope["http_version"],
        )
        try:
            response = await self.handler(request)
        except Exception:
            logger.exception("%s: %s %s failed", self.name, request.method, request.path)
            failed = self.error_response(500, "internal error in the gateway; see the runner's log")
            await _send(send, failed)
            return
        if isinstance(response, StreamingResponse):
            await self._stream(send, receive, request, response)
        else:
            await _send(send, response)

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes | Response:
        """The request body, or the 413 answer once it passes ``max_body``."""
        limit = self.max_body
        too_large = f"the request body is limited to {limit} bytes"
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return self.error_response(413, too_large)
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return self.error_response(413, too_large)
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _stream(
        self, send: Send, receive: Receive, request: Request, response: StreamingResponse
    ) -> None:
        """Writes a streamed answer. uvicorn drops what is sent after the client left, so a
        watcher on ``receive`` tells the stream, which then closes the body's generator."""
        left = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            left.set()

        watcher = asyncio.create_task(watch())
        body = response.body
        try:
            await send(_start(response.status, response.content_type, response.headers))
            async for data in body:
                if left.is_set():
                    return
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except Exception:
            # Headers are out; all that is left to say is an unfinished body.
            logger.exception("%s: streaming %s failed", self.name, request.path)
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await body.aclose()  # type: ignore[attr-defined]


def _start(status: int, content_type: str, headers: dict[str, str]) -> Message:
    raw = [(b"content-type", content_type.encode("latin-1"))]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {"type": "http.response.start", "status": status, "headers": raw}


async def _send(send: Send, response: Response, *, close: bool = False) -> None:
    start = _start(response.status, response.content_type, response.headers)
    start["headers"].append((b"content-length", b"%d" % len(response.body)))
    if close:
        start["headers"].append((b"connection", b"close"))
    await send(start)
    await send({"type": "http.response.body", "body": response.body})


# -- the protocol: uvicorn's, with the limits it leaves out -----------------------------------

_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the head bound, the version rule and the Upgrade
    rule of the module docstring. ``error_response`` words the refusals."""

    def __init__(self, *args: Any, error_response: ErrorResponse, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._error_response = error_response
        self._head_bytes = 0
        self._read_size = 0
        self._in_head = True
        self._head_since = 0.0  # loop time: the connection's opening, then a head's first byte
        self._head_begun = False  # a byte of the current head has arrived
        self._refused = False
        self._refusal: bytes | None = None  # written once the answers in progress are out

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        self._read_size = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return  # answered as plain HTTP/1.1 (``on_headers_complete``); nothing follows
        except httptools.HttpParserError as error:
            if not self._refused:
                self._refuse(400, f"malformed HTTP request: {error}")
            return
        if self._in_head and not self._refused:
            # At most one read past the limit is ever held (in the parser's buffers).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._refuse(431, f"the request line and headers are limited to {MAX_HEAD} bytes")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_since = self.loop.time()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_since = self.loop.time()
        self._head_begun = True

    def expire_head(self, now: float) -> None:
        """Ends the connection if its head is overdue (``HEAD_TIMEOUT`` from its first byte)
        or it never said anything (``KEEPALIVE_TIMEOUT`` from its opening)."""
        if not self._in_head or self._refused or self.transport.is_closing():
            return
        if self._head_begun:
            if now - self._head_since > HEAD_TIMEOUT:
                self._refuse(408, f"the request head must arrive within {HEAD_TIMEOUT:g} seconds")
        elif self.cycle is None and now - self._head_since > KEEPALIVE_TIMEOUT:
            self.transport.close()  # nothing was asked: nothing to answer

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_begun = False
        if self._refused:  # a request pipelined after a refusal is never served
            return
        if self._head_bytes + self._read_size > MAX_HEAD and self._head_size() > MAX_HEAD:
            # A head that arrived whole in one read (the count in ``data_received`` comes after).
            self._refuse(431, f"the request line and headers are limited to {MAX_HEAD} bytes")
            return
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            self._refuse(505, f"HTTP/{version} is not served here; use HTTP/1.1")
            return
        super().on_headers_complete()
        self.cycle.transport = _WholeAnswer(self.transport, self.cycle)  # type: ignore[assignment]
        if self.parser.should_upgrade():
            self.cycle.keep_alive = False  # the parser stops at an upgrade: close after it

    def _head_size(self) -> int:
        # ": " and CRLF of each header line counted too: many short headers are a large head.
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
            self._in_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and self._idle():
            self._write_refusal()

    def _idle(self) -> bool:
        return not self.pipeline and (self.cycle is None or self.cycle.response_complete)

    def _refuse(self, status: int, message: str) -> None:
        """Answers, after what was already read, a request that cannot be read; then closes."""
        self._refused = True
        self.transport.pause_reading()
        response = self._error_response(status, message)
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                f"date: {formatdate(time.time(), usegmt=True)}",
                f"content-type: {response.content_type}",
                f"content-length: {len(response.body)}", "connection: close"]  # fmt: skip
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        self._refusal = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
        if self._idle():
            self._write_refusal()

    def _write_refusal(self) -> None:
        """Writes the refusal and ends the connection gracefully: closing a socket with unread
        bytes would reset it, and a reset can destroy the answer before the client reads it,
        so what the client still sends is read and dropped for ``LINGER`` seconds."""
        refusal, self._refusal = self._refusal, None
        transport = self.transport
        if refusal is None or transport.is_closing():
            return
        transport.write(refusal)
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        self.loop.call_later(LINGER, transport.close)


class _WholeAnswer:
    """The connection's transport as one request's cycle sees it: the head of an answer of
    known length is held until its body is written, and both go out in one write.

    uvicorn writes an answer's head and body separately, and on uvloop each write is a send
    of its own: two system calls, two segments and two wake-ups of the client per answer
    where one does (``bench/README.md``). A streamed answer's head is not held (its first
    chunk may take a while); neither is a head with no body to follow (``content-length: 0``,
    an answer to HEAD)."""

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._held = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
            return
        cycle = self._cycle
        # The first write after the answer started is its head (an interim "100 Continue"
        # comes before the start); uvicorn has read its content-length by then.
        if (not self._held and cycle.response_started and cycle.chunked_encoding is False
                and cycle.expected_content_length > 0 and cycle.scope["method"] != "HEAD"):  # fmt: skip
            self._held = True
            self._head = data
            return
        self._transport.write(data)

    def close(self) -> None:
        head, self._head = self._head, None
        if head is not None:  # the application failed between head and body
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


# -- the server -------------------------------------------------------------------------------


class Server:
    """Serves one handler on a TCP port, on the running event loop, until ``stop``.

    uvicorn's own ``serve`` would take over the process's signals, which belong to the
    runner, so its public steps (``startup``, ``main_loop``, ``shutdown``) are called here.
    """

    def __init__(self, handler: Handler, *, name: str, max_body: int,
                 error_response: ErrorResponse = plain_error) -> None:  # fmt: skip
        self.app = App(handler, name=name, max_body=max_body, error_response=error_response)
        self.error_response = error_response
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._ticking: asyncio.Task[None] | None = None
        self._sweeping: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._server.server_state.connections) if self._server else 0

    async def start(self, host: str, port: int) -> None:
        config = uvicorn.Config(
            self.app, host=host, port=port, loop="none", ws="none", lifespan="off",
            # uvicorn takes any callable that makes the protocol, not only a class.
            http=partial(_Protocol, error_response=self.error_response),  # type: ignore[arg-type]
            log_config=None, access_log=False, server_header=False, proxy_headers=False,
            timeout_keep_alive=KEEPALIVE_TIMEOUT,
        )  # fmt: skip
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        self._server = server
        self.port = server.servers[0].sockets[0].getsockname()[1]
        # Ticks the Date header once a second, and ends once ``should_exit`` is set.
        self._ticking = asyncio.create_task(server.main_loop())
        self._sweeping = asyncio.create_task(self._expire_heads(server))

    async def _expire_heads(self, server: uvicorn.Server) -> None:
        """Every ``HEAD_CHECK_INTERVAL`` seconds, ends the connections whose head is overdue."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEAD_CHECK_INTERVAL)
            now = loop.time()
            for connection in list(server.server_state.connections):
                try:
                    if isinstance(connection, _Protocol):
                        connection.expire_head(now)
                except Exception:  # one connection's trouble must not stop the sweeps
                    logger.exception("%s: ending a connection with an overdue head failed",
                                     self.app.name)  # fmt: skip

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, let requests in progress finish within ``grace``, close the rest."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
        if self._ticking is not None:
            await self._ticking
        # It sleeps 0.1 s first; its setting is typed as whole seconds but any number works.
        server.config.timeout_graceful_shutdown = max(grace - 0.1, 0.0)  # type: ignore[assignment]
        await server.shutdown()
        for connection in list(server.server_state.connections):
            connection.transport.abort()
