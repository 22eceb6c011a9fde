"""A small HTTP/1.1 server for the gateway: asyncio's ``Protocol`` with httptools' parser.

Why not aiohttp's server, which the rest of the project uses: the gateway sits on the path
of every model call the agent makes, and its latency budget (issue 5: at most 1 ms added at
the median) is about what aiohttp's server alone costs per request on a small core (its
``Request``, router, middleware chain and ``StreamResponse`` machinery; see the gateway
section of ``bench/README.md``). The gateway needs a handful of routes on the pod's
loopback, JSON in and out, and one streamed answer type, so this module does only that:

- HTTP/1.1 and 1.0 with keep-alive, pipelined requests answered in order, request bodies
  with ``Content-Length`` or chunked, ``Expect: 100-continue`` (curl sends it for bodies
  over 1 KiB and would otherwise wait a second);
- limits that answer instead of buffering without end: 431 for heads over ``MAX_HEAD``,
  413 for bodies over the server's ``max_body``, 400 for what does not parse;
- answers with a length, or streamed (``StreamingResponse``) with chunked framing and
  write back-pressure; a client that leaves mid-stream closes the body's generator, so the
  handler learns it at its ``yield``;
- idle keep-alive connections close after ``KEEPALIVE_TIMEOUT``; ``stop`` lets requests in
  progress finish within a grace period.

It is not a general web server: no TLS, no upgrades, no compression, no routing beyond
what the handler does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
"""Bytes of request line and headers a request may have."""
KEEPALIVE_TIMEOUT = 75.0
"""Seconds an idle connection (or one stalled mid-request) stays open; aiohttp's default."""
MAX_PIPELINED = 16
"""Requests read ahead on one connection before reading pauses until answers catch up."""


from llmagents.runner.web import (  # noqa: E402  (the comparison shares the route types)
    ErrorResponse,
    Handler,
    Request,
    Response,
    StreamingResponse,
    plain_error,
)


class Server:
    """Serves one handler on a TCP port until ``stop``."""

    def __init__(self, handler: Handler, *, name: str, max_body: int,
                 error_response: ErrorResponse = plain_error) -> None:  # fmt: skip
        self.handler = handler
        self.name = name
        self.max_body = max_body
        self.error_response = error_response
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._date = b""
        self._date_second = 0

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                reuse_address=True)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening, let requests in progress finish within ``grace``, close the rest."""
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for connection in list(self._connections):
            connection.close_when_idle()
        busy = [c.serving for c in self._connections if c.serving is not None]
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for connection in list(self._connections):
            connection.abort()

    def date_header(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def _head(server: Server, status: int, content_type: str, headers: dict[str, str],
          framing: bytes) -> bytes:  # fmt: skip
    lines = [b"HTTP/1.1 %d %s\r\ndate: %s\r\ncontent-type: %s\r\n%s"
             % (status, _REASONS.get(status, b"Unknown"), server.date_header(),
                content_type.encode(), framing)]  # fmt: skip
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} has a line break")  # would split the response
        lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    lines.append(b"\r\n")
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs the handler for each in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.serving: asyncio.Task[None] | None = None
        self._queue: deque[tuple[Request, bool] | Response] = deque()
        self._drained: asyncio.Future[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._closing_when_idle = False
        self._reading_paused = False
        self._refused = False
        # The request being parsed.
        self._url: list[bytes] = []
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._head_size = 0
        self._body_size = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server._connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._connections.discard(self)
        self._disarm_idle()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("the client closed the connection"))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            if not self._refused:
                self._refuse(400, f"malformed HTTP request: {error}")

    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = {}
        self._body.clear()
        self._head_size = 0
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._grow_head(len(name) + len(value)):
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def _grow_head(self, size: int) -> bool:
        self._head_size += size
        if self._head_size > MAX_HEAD and not self._refused:
            self._refuse(431, f"the request line and headers are limited to {MAX_HEAD} bytes")
        return not self._refused

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            self._refuse(413, f"the request body is limited to {self.server.max_body} bytes")
            return
        expects = self._headers.get("expect", "").lower() == "100-continue"
        if expects and self.serving is None and self.transport is not None:  # never mid-answer
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_size += len(body)
        if self._body_size > self.server.max_body:
            self._refuse(413, f"the request body is limited to {self.server.max_body} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        target = b"".join(self._url)
        path, _, query = target.partition(b"?")
        request = Request(
            method=self.parser.get_method().decode("ascii"),
            path=path.decode("utf-8", "replace"),
            query=query.decode("utf-8", "replace"),
            headers=self._headers,
            body=b"".join(self._body),
            http_version=self.parser.get_http_version(),
        )
        # HTTP/1.0 keep-alive needs its own response header; such clients are rare enough
        # to close after each answer instead.
        keep_alive = request.http_version != "1.0" and self.parser.should_keep_alive()
        self._queue.append((request, keep_alive))
        self._disarm_idle()
        if len(self._queue) >= MAX_PIPELINED and self.transport and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        if self.serving is None:
            self.serving = asyncio.get_running_loop().create_task(self._serve())

    # -- serving ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while self._queue and not self.closed:
                item = self._queue.popleft()
                if isinstance(item, Response):  # a refusal: the stream is out of step
                    self._write(self._encode(item, b"connection: close\r\n"))
                    self._close()
                    return
                if self._reading_paused and len(self._queue) < MAX_PIPELINED // 2:
                    self._reading_paused = False
                    assert self.transport is not None
                    self.transport.resume_reading()
                request, keep_alive = item
                if not await self._answer(request, keep_alive) or self._closing_when_idle:
                    self._close()
                    return
        except ConnectionResetError:
            self._close()
        finally:
            self.serving = None
        if not self.closed:
            self._arm_idle()

    async def _answer(self, request: Request, keep_alive: bool) -> bool:
        """Runs the handler and writes its answer; whether the connection can carry more."""
        try:
            response = await self.server.handler(request)
            keep_alive = keep_alive and not self._closing_when_idle  # stopping meanwhile
            close = b"" if keep_alive else b"connection: close\r\n"
            if isinstance(response, StreamingResponse):
                return await self._stream(request, response) and keep_alive
            data = self._encode(response, close)
        except Exception:
            logger.exception("%s: %s %s failed", self.server.name, request.method, request.path)
            close = b"" if keep_alive else b"connection: close\r\n"
            failed = self.server.error_response(500, "internal error in the gateway; see the "
                                                "runner's log")  # fmt: skip
            data = self._encode(failed, close)
        self._write(data)
        return keep_alive

    def _encode(self, response: Response, extra: bytes) -> bytes:
        framing = b"content-length: %d\r\n%s" % (len(response.body), extra)
        return _head(self.server, response.status, response.content_type, response.headers,
                     framing) + response.body  # fmt: skip

    async def _stream(self, request: Request, response: StreamingResponse) -> bool:
        """Writes a streamed answer; whether it ended cleanly on a connection that can go on."""
        chunked = request.http_version != "1.0"  # 1.0 clients read to the connection's end
        framing = b"transfer-encoding: chunked\r\n" if chunked else b"connection: close\r\n"
        body = response.body
        try:
            self._write(_head(self.server, response.status, response.content_type,
                              response.headers, framing))  # fmt: skip
            async for data in body:
                if self.closed:
                    return False
                if data:
                    self._write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    if self._drained is not None and not self._drained.done():
                        await self._drained
            if chunked:
                self._write(b"0\r\n\r\n")
            return chunked
        except ConnectionResetError:
            return False
        except Exception:
            # Headers are out; all that is left to say is an unfinished body.
            logger.exception("%s: streaming %s failed", self.server.name, request.path)
            return False
        finally:
            await body.aclose()  # type: ignore[attr-defined]

    def _write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        self.transport.write(data)

    # -- closing ------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answers, after what was already read, a request that cannot be read; then closes."""
        self._refused = True
        self._queue.append(self.server.error_response(status, message))
        if self.serving is None and not self.closed:
            self.serving = asyncio.get_running_loop().create_task(self._serve())

    def _arm_idle(self) -> None:
        self._disarm_idle()
        self._idle = asyncio.get_running_loop().call_later(KEEPALIVE_TIMEOUT, self._close)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def close_when_idle(self) -> None:
        self._closing_when_idle = True
        self._queue.clear()
        if self.serving is None:
            self._close()

    def _close(self) -> None:
        self._disarm_idle()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._disarm_idle()
        if self.transport is not None:
            self.transport.abort()
