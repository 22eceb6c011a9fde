"""The adapters' HTTP client: aiohttp's ``ClientSession``, configured once, here.

One ``Transport`` per adapter, so one connection pool per provider. What it adds to aiohttp,
and why:

- TLS always verified, against certifi's authorities and those the environment adds, and
  the proxy the environment names, both read once per adapter (``egress``). Redirects never
  followed (a provider's redirect is an error worth seeing, and following one would carry
  the key elsewhere).
- Credentials go with each request, never as the session's default headers: aiohttp sends a
  session's defaults to the proxy as well (in the clear, in a ``CONNECT``) and turns an
  ``Authorization`` among them into ``Proxy-Authorization``.
- The answer's head is bounded by aiohttp's parser (``MAX_HEAD_LINE`` bytes a line,
  ``MAX_HEADERS`` lines, so an endless or repeated header fails in microseconds), its body by
  ``max_body`` bytes, streamed or not.
- At most ``max_connections`` requests in flight. Waiting for one is the runner's congestion,
  not the provider's failure: when the attempt's deadline passes first the error is
  ``ClientBusy``, which no breaker counts.
- A kept-alive connection that sat idle and breaks before any answer (the server's idle timeout
  racing the reuse) is retried once on a fresh connection. One that was busy a moment ago is
  not: the provider dropped a request it may have charged, and another try is the engine's
  decision.

No cookies are kept: a provider's (a load balancer's affinity cookie, say) is never sent
back, and no jar is searched on every request. Compression is neither asked for nor decoded (a chat answer is small, and the body limit then
counts what arrives).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from llmagents.errors import ClientBusy, MalformedResponse
from llmagents.providers import egress

logger = logging.getLogger(__name__)

MAX_HEAD_LINE = 8190
"""Bytes of the status line or of one header line of an answer (aiohttp's default)."""
MAX_HEADERS = 128
"""Header lines of an answer (aiohttp's default); more is a malformed answer."""
STALE_AFTER = 1.0
"""Seconds a kept-alive connection must have sat idle for a break before any answer to be
taken for the server's idle timeout (servers close idle connections after 2 to 120 seconds)
and retried."""
USER_AGENT = "llmagents"


def checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` unchanged, or ``ValueError`` naming (never showing) a value that cannot be
    sent: a line break would end the header early, so a bad key must fail here, not leak."""
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name} has a line break or NUL in its value")
    return headers


class Deadline:
    """``asyncio.timeout_at(when)`` for the task that enters it, as a plain (not async)
    context manager: one timer handle, and none of ``asyncio.Timeout``'s coroutines and
    state checks, which cost several times the timer on every provider call (and on every
    event of a stream). Same outcome: past ``when`` the task is cancelled at its current
    await and the block raises ``TimeoutError``; a cancellation from elsewhere stays one."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_when")

    def __init__(self, when: float) -> None:
        self._when = when
        self._expired = False

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline must be entered in a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._handle = task.get_loop().call_at(self._when, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self._handle.cancel()
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            raise TimeoutError from exc


@dataclass(frozen=True, slots=True)
class _Handout:
    protocol: Any
    """aiohttp's protocol object of the connection: the same object for as long as it lives."""
    idle: float | None
    """Seconds it had sat idle in the pool; None when it is new."""


_handout: contextvars.ContextVar[_Handout | None] = contextvars.ContextVar("_handout", default=None)
"""The connection the current task's last request got (``connect`` runs in that task)."""


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, telling the requesting task through ``_handout`` which connection
    it got and how long that one sat idle. ``Transport`` stamps a connection with ``used``
    when done with it; the stamps go with the connections aiohttp drops."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._last_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def used(self, protocol: Any) -> None:
        self._last_used[protocol] = asyncio.get_running_loop().time()

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        last = self._last_used.get(protocol)
        idle = None if last is None else asyncio.get_running_loop().time() - last
        _handout.set(_Handout(protocol, idle))
        return connection


@dataclass(slots=True)
class _Session:
    """The client session and the in-flight limit of one event loop."""

    http: aiohttp.ClientSession
    connector: _Connector
    slots: asyncio.Semaphore
    loop: asyncio.AbstractEventLoop


class Transport:
    """Requests to one provider; errors are aiohttp's, ``ClientBusy`` and ``MalformedResponse``
    (body over the limit). The caller maps aiohttp's with ``mapping.transport_error``.

    The session is opened by the first request, on the running event loop, and replaced when
    the loop changes (a test's, a second ``asyncio.run``): a session cannot serve, or be closed
    from, another loop, and the old loop's connections went with it.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: dict[str, str],
        connect_timeout: float,
        max_connections: int,
        max_body: int,
    ) -> None:
        self.provider = provider
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_body = max_body
        auth = checked_headers(headers)
        self._headers = {False: auth, True: {**auth, "content-type": "application/json"}}
        self._proxy = egress.env_proxy(base_url)
        self._tls = egress.tls_context()  # now, so that an unusable CA bundle fails the start
        self._session: _Session | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            if session.loop is asyncio.get_running_loop():
                await session.http.close()

    def _open(self) -> _Session:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.loop is not loop:
            # No aiohttp limit: the in-flight limit is ``slots``, so that waiting is told apart.
            connector = _Connector(limit=0, ssl=self._tls)
            http = aiohttp.ClientSession(
                connector=connector,
                headers={"user-agent": USER_AGENT},
                # An API client keeps no cookies: none is sent back, and no jar is searched
                # on every request.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
                # The attempt's asyncio deadline bounds the rest; aiohttp's own total timeout
                # would only add a second timer per request.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                max_line_size=MAX_HEAD_LINE,
                max_field_size=MAX_HEAD_LINE,
                max_headers=MAX_HEADERS,
            )
            slots = asyncio.Semaphore(self.max_connections)
            session = self._session = _Session(http, connector, slots, loop)
        return session

    async def slot(self, deadline: float) -> asyncio.Semaphore:
        """Takes one of the in-flight slots (the caller releases it); ``ClientBusy`` when the
        loop time ``deadline`` passes first: the provider was never asked, so not to blame."""
        slots = self._open().slots
        if not slots.locked():
            await slots.acquire()  # returns at once
            return slots
        try:
            with Deadline(deadline):
                await slots.acquire()
        except TimeoutError:
            raise ClientBusy(
                f"all {self.max_connections} connections stayed busy until the attempt's deadline",
                provider=self.provider,
            ) from None
        return slots

    def request(self, method: str, url: URL, body: bytes | None) -> _Answer:
        """``async with`` it for the answer once its head arrived (a JSON ``body`` sent with
        its content type); the connection goes back to the pool at the end of the context.
        The caller holds a slot."""
        return _Answer(self, method, url, body)

    async def _send(
        self,
        http: aiohttp.ClientSession,
        method: str,
        url: URL,
        body: bytes | None,
        *,
        retry: bool,
    ) -> aiohttp.ClientResponse:
        _handout.set(None)
        try:
            return await http.request(
                method, url, data=body, headers=self._headers[body is not None],
                proxy=self._proxy, allow_redirects=False,
            )  # fmt: skip
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            handout = _handout.get()
            _handout.set(None)
            idle = None if handout is None else handout.idle
            if not retry or idle is None or idle < STALE_AFTER:
                raise
        logger.debug(
            "provider %s: a connection idle for %.1fs was closed by the server; retrying once",
            self.provider,
            idle,
        )
        return await self._send(http, method, url, body, retry=False)

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body; ``MalformedResponse`` beyond ``max_body`` bytes, before reading it
        when the answer announces its length."""
        length = response.content_length
        if length is None:
            return b"".join([chunk async for chunk in self.chunks(response)])
        if length > self.max_body:
            raise self._too_large(f"announces {length} bytes")
        return await response.read()

    async def chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        """The body as it arrives; ``MalformedResponse`` once it passes ``max_body`` bytes."""
        limit = self.max_body
        received = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
            if received > limit:
                raise self._too_large(f"passed {limit} bytes")
            yield chunk

    def _too_large(self, detail: str) -> MalformedResponse:
        return MalformedResponse(
            f"the answer's body {detail}, over the {self.max_body}-byte limit",
            provider=self.provider,
        )


class _Answer:
    """The context of ``Transport.request``. A class rather than ``asynccontextmanager``,
    which would make an async generator per request (tracked by the event loop in a weak
    set) and a few more frames: this is on the path of every provider call."""

    __slots__ = ("_body", "_handout", "_method", "_response", "_session", "_transport", "_url")

    def __init__(self, transport: Transport, method: str, url: URL, body: bytes | None) -> None:
        self._transport = transport
        self._method = method
        self._url = url
        self._body = body
        self._session: _Session | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._handout: _Handout | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        transport = self._transport
        session = self._session = transport._open()
        response = self._response = await transport._send(
            session.http, self._method, self._url, self._body, retry=True
        )
        self._handout = _handout.get()
        _handout.set(None)
        return response

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._response is not None and self._session is not None
        self._response.release()
        if self._handout is not None:
            self._session.connector.used(self._handout.protocol)
