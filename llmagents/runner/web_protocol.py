"""The gateway server's protocol: uvicorn's httptools protocol with the limits it leaves out
(``web.py``'s docstring lists them), and the transport view that sends a whole answer in one
write.

It builds on uvicorn below its public API (``HttpToolsProtocol`` and its
``RequestResponseCycle``); pyproject.toml pins uvicorn to the releases this was tested with,
and ``tests/unit/runner/test_uvicorn_internals.py`` names each part relied on.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from llmagents.runner.web import ErrorResponse

MAX_HEAD = 64 * 1024
"""Bytes of request line and headers a request may have."""
HEAD_TIMEOUT = 10.0
"""Seconds from the first byte of a request to the end of its head (nginx's
``client_header_timeout`` is 60; the gateway's clients are on the pod's loopback)."""
BODY_TIMEOUT = 30.0
"""Seconds from the end of a request's head (or, for a pipelined request, from the end of
the answer before it) to the end of its body: a whole deadline, not one between reads, so
that a body trickled a byte at a time is cut off too. The largest body the gateway takes
(8 MiB) crosses loopback in milliseconds."""
LINGER = 2.0
"""Seconds a refused connection is read (and what arrives dropped) before it is closed."""

_REASONS = {status.value: status.phrase for status in HTTPStatus}


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the head bounds, the version rule and the Upgrade
    rule of ``web.py``'s docstring. ``error_response`` words the refusals."""

    def __init__(
        self, *args: Any, error_response: ErrorResponse, max_body: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._error_response = error_response
        self._max_body = max_body
        self._head_bytes = 0
        self._read_size = 0
        self._in_head = True
        self._head_since = 0.0  # loop time: the connection's opening, then a head's first byte
        self._head_begun = False  # a byte of the current head has arrived
        self._refused = False
        self._refusal: bytes | None = None  # written once the answers in progress are out
        # The cycle whose body is being read (head done, message not yet), since when, how
        # many body bytes came and how many other bytes (chunk framing, trailers) since.
        self._body_cycle: Any = None
        self._body_since = 0.0
        self._body_bytes = 0
        self._fed_body = False  # the read being parsed held body bytes (or the head's end)
        self._tail_bytes = 0
        self._abandoned: Any = None  # a cycle told its client left, its body cut by a refusal

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        self._read_size = len(data)
        self._fed_body = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return  # answered as plain HTTP/1.1 (``on_headers_complete``); nothing follows
        except httptools.HttpParserError as error:
            if not self._refused:
                self._refuse(400, f"malformed HTTP request: {error}")
            return
        if self._refused:
            return
        if self._in_head:
            # At most one read past the limit is ever held (in the parser's buffers).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._refuse(431, f"the request line and headers are limited to {MAX_HEAD} bytes")
        elif self._body_cycle is not None:
            # Bytes of the body that are not body: chunk framing between chunks (a few bytes),
            # or trailers after the last chunk, which the parser keeps however many come.
            if self._fed_body:
                self._tail_bytes = 0
            else:
                self._tail_bytes += len(data)
            if self._tail_bytes > MAX_HEAD:
                self._refuse(431, "chunk framing and trailers are limited to "
                                  f"{MAX_HEAD} bytes")  # fmt: skip

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_since = self.loop.time()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_since = self.loop.time()
        self._head_begun = True

    def expire(self, now: float) -> None:
        """Ends the connection if its head is overdue (``HEAD_TIMEOUT`` from its first byte),
        its body is (``BODY_TIMEOUT`` from the end of the head), or it never said anything
        (the keep-alive timeout from its opening)."""
        if self._refused or self.transport.is_closing():
            return
        if self._body_cycle is not None:
            if now - self._body_since > BODY_TIMEOUT:
                self._refuse(408, f"the request body must arrive within {BODY_TIMEOUT:g} "
                                  "seconds of its head")  # fmt: skip
            return
        if not self._in_head:
            return
        if self._head_begun:
            if now - self._head_since > HEAD_TIMEOUT:
                self._refuse(408, f"the request head must arrive within {HEAD_TIMEOUT:g} seconds")
        elif self.cycle is None and now - self._head_since > self.timeout_keep_alive:
            self.transport.close()  # nothing was asked: nothing to answer

    def refuse_unfinished_body(self, status: int, message: str) -> None:
        """Answers now a request whose body is still arriving (the server is stopping: it
        could serve it only once the body came); other connections are left as they are."""
        if self._body_cycle is not None and not self._refused:
            self._refuse(status, message)

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
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                self._refuse_body_too_large()
                return
        super().on_headers_complete()
        self.cycle.transport = _WholeAnswer(self.transport, self.cycle)  # type: ignore[assignment]
        if self.parser.should_upgrade():
            self.cycle.keep_alive = False  # the parser stops at an upgrade: close after it
        self._body_cycle = self.cycle
        self._body_since = self.loop.time()
        self._body_bytes = self._tail_bytes = 0
        self._fed_body = True  # the head's bytes in this read are the head's, not the tail's

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._body_cycle is None:
            super().on_header(name, value)
        # else a trailer (after a chunked body): not served, and no header of the request

    def _head_size(self) -> int:
        # ": " and CRLF of each header line counted too: many short headers are a large head.
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            self._body_bytes += len(body)
            self._fed_body = True
            if self._body_bytes > self._max_body:
                self._refuse_body_too_large()
                return
            super().on_body(body)

    def _refuse_body_too_large(self) -> None:
        self._refuse(413, f"the request body is limited to {self._max_body} bytes")

    def on_message_complete(self) -> None:
        if not self._refused:
            self._body_cycle = None
            super().on_message_complete()
            self._in_head = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._body_cycle is not None:
            # A pipelined request's body is read from now on (uvicorn paused reading).
            self._body_since = self.loop.time()
        if self._refusal is not None and self._idle():
            self._write_refusal()

    def _idle(self) -> bool:
        cycle = self.cycle
        return not self.pipeline and (
            cycle is None or cycle.response_complete or cycle is self._abandoned
        )

    def _refuse(self, status: int, message: str) -> None:
        """Answers, after what was already read, a request that cannot be read; then closes.

        A refusal in the middle of a body (a malformed chunk, trailers past the limit, the
        body overdue) is that request's answer: the application waits for the rest of the
        body, so it is told the client left (it serves nothing and answers nothing)."""
        self._refused = True
        self.transport.pause_reading()
        cycle, self._body_cycle = self._body_cycle, None
        if cycle is not None and not cycle.response_started:
            self._abandoned = cycle
            cycle.disconnected = True
            cycle.message_event.set()
        path = self.url.partition(b"?")[0].decode("latin-1")  # as far as it was read
        response = self._error_response(status, message, path)
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
        bytes would reset it, and a reset can destroy the answer before the client reads it
        (a client writes its whole body before it reads: an SDK sent a 413 this way saw a
        connection error, and retried), so what the client still sends is read and dropped
        for ``LINGER`` seconds."""
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
