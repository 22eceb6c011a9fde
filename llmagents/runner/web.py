"""The gateway's HTTP server: uvicorn (httptools, on the runner's uvloop) around a bare ASGI
application, and the small types the gateway's routes speak.

Routes take a ``Request`` and return a ``Response`` or a ``StreamingResponse``; ``App`` turns
ASGI's scope and messages into them and back, so route code does not know the server.

Why uvicorn and not the project's former own HTTP/1.1 server: measured side by side in one run
(``bench/gateway.py``, ``bench/README.md``), the own server saved less than the 0.3 ms at the
median that would have justified keeping protocol code of our own. uvicorn leaves four things
to its user, done here:

- bounds on the request head (in ``web_protocol``). uvicorn's httptools protocol buffers a
  head without end (so does httptools itself, inside a header value it has not finished),
  so ``GatewayHttpProtocol`` counts the bytes of an unfinished head as they arrive and
  answers 431 at ``MAX_HEAD``. Nor does uvicorn time a head (a client may dribble one byte
  at a time, "slowloris", or connect and say nothing, holding a connection for ever): a head
  unfinished ``HEAD_TIMEOUT`` seconds after its first byte is answered 408, and a
  connection silent for ``KEEPALIVE_TIMEOUT`` seconds from its opening is closed;
- the same for the body: uvicorn waits for a body's end for ever, so a body unfinished
  ``BODY_TIMEOUT`` seconds after its head is answered 408; and the bytes of a chunked body
  that are not body (framing, then trailers, which the parser keeps however many come, and
  which uvicorn would add to the request's headers) are bounded like a head (431), and
  trailers are dropped;
- HTTP/1.0 and 1.1 only: other versions in the request line (0.9, 2.0) get a 505;
- an ``Upgrade`` request is answered once, as plain HTTP/1.1 (a server may ignore Upgrade),
  and the connection closes after it, since the parser cannot go on past an upgrade;
- a bound on the request body (``max_body``, 413), answered like the other refusals: the
  rest of the body is read and dropped, or the connection's reset would hide the answer
  from a client still writing it.

A refusal waits for the answers already in progress on the connection, then closes it. A
request whose client leaves before its body is whole never reaches a route (uvicorn hands the
application what came, then a disconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import uvicorn

from llmagents.runner.web_protocol import GatewayHttpProtocol

logger = logging.getLogger(__name__)

KEEPALIVE_TIMEOUT = 75
"""Seconds an idle connection stays open (aiohttp's default; uvicorn's is 5); also how long a
new connection may wait before the first byte of its first request."""
HEAD_CHECK_INTERVAL = 1.0
"""Seconds between looks for heads past ``web_protocol.HEAD_TIMEOUT`` and bodies past
``web_protocol.BODY_TIMEOUT``: one sweep over the connections rather than a timer armed and
cancelled for every request."""


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
ErrorResponse = Callable[[int, str, str], Response]
"""How the server words its own refusals (400, 408, 413, 431, 500, 505) for this API's
clients: status, message, and the request's path as far as it was read (maybe empty), for
servers whose routes speak different protocols."""


def plain_error(status: int, message: str, path: str = "") -> Response:
    return Response(status, message.encode(), content_type="text/plain; charset=utf-8")


# -- the ASGI application ---------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class App:
    """ASGI 3 application around one handler."""

    def __init__(self, handler: Handler, *, name: str, error_response: ErrorResponse) -> None:
        self.handler = handler
        self.name = name
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
        body = await _body(receive)
        if body is None:  # the client left before its body was whole: nobody to answer
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
            failed = self.error_response(
                500, "internal error in the gateway; see the runner's log", request.path
            )
            await _send(send, failed)
            return
        if isinstance(response, StreamingResponse):
            await self._stream(send, receive, request, response)
        else:
            await _send(send, response)

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


async def _body(receive: Receive) -> bytes | None:
    """The request body, or None when the client went away before sending all of it (a cut
    body is never served). Its size is bounded by the protocol, which answers 413."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _start(status: int, content_type: str, headers: dict[str, str]) -> Message:
    raw = [(b"content-type", content_type.encode("latin-1"))]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {"type": "http.response.start", "status": status, "headers": raw}


async def _send(send: Send, response: Response) -> None:
    start = _start(response.status, response.content_type, response.headers)
    start["headers"].append((b"content-length", b"%d" % len(response.body)))
    await send(start)
    await send({"type": "http.response.body", "body": response.body})


# -- the server -------------------------------------------------------------------------------


class Server:
    """Serves one handler on a TCP port, on the running event loop, until ``stop``.

    uvicorn's own ``serve`` would take over the process's signals, which belong to the
    runner, so its public steps (``startup``, ``main_loop``, ``shutdown``) are called here.
    """

    def __init__(self, handler: Handler, *, name: str, max_body: int,
                 error_response: ErrorResponse = plain_error) -> None:  # fmt: skip
        self.app = App(handler, name=name, error_response=error_response)
        self.error_response = error_response
        self.max_body = max_body
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
            http=partial(GatewayHttpProtocol, error_response=self.error_response,  # type: ignore[arg-type]
                         max_body=self.max_body),
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
        """Every ``HEAD_CHECK_INTERVAL`` seconds, ends the connections whose head or body is
        overdue."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEAD_CHECK_INTERVAL)
            now = loop.time()
            for connection in list(server.server_state.connections):
                try:
                    if isinstance(connection, GatewayHttpProtocol):
                        connection.expire(now)
                except Exception:  # one connection's trouble must not stop the sweeps
                    logger.exception("%s: ending a connection with an overdue head failed",
                                     self.app.name)  # fmt: skip

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, let requests in progress finish within ``grace``, close the rest.
        A request whose body is still arriving is answered 503 at once: it could be served
        only after its body came, and waiting for it would hold the stop."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        for connection in list(server.server_state.connections):
            if isinstance(connection, GatewayHttpProtocol):
                connection.refuse_unfinished_body(503, "the server is shutting down")
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
