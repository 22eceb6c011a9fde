"""The gateway's HTTP server (uvicorn with the limits of ``runner/web.py``), spoken to over
real sockets by raw bytes and by httpx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable

import httpx
import pytest

from llmagents.runner import web, web_protocol
from llmagents.runner.web import Request, Response, Server, StreamingResponse

Exchange = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def echo(request: Request) -> Response:
    """Answers with what it was asked, so tests can see what the server parsed."""
    if request.path == "/boom":
        raise RuntimeError("the handler broke")
    said = f"{request.method} {request.path}?{request.query} {request.body.decode()}"
    return Response(200, said.encode(), content_type="text/plain",
                    headers={"x-seen-header": request.headers.get("x-test", "")})  # fmt: skip


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[Server]]]:
    servers: list[Server] = []

    async def start(handler: web.Handler = echo, max_body: int = 1024) -> Server:
        server = Server(handler, name="test", max_body=max_body)
        await server.start("127.0.0.1", 0)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        await server.stop(grace=1)


async def connect(server: Server) -> Exchange:
    assert server.port is not None
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length, read off a raw connection."""
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(5):
        return await reader.read() == b""


async def test_keep_alive_serves_several_requests_on_one_connection(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    for n in range(3):
        writer.write(b"GET /n/%d?q=%d HTTP/1.1\r\nhost: x\r\nx-test: v%d\r\n\r\n" % (n, n, n))
        status, headers, body = await read_response(reader)
        assert (status, body) == (200, b"GET /n/%d?q=%d " % (n, n))
        assert headers["x-seen-header"] == f"v{n}"
    writer.close()


async def test_pipelined_requests_are_answered_in_order(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"".join(b"POST /p HTTP/1.1\r\ncontent-length: 1\r\n\r\n%d" % n for n in range(5)))
    answers = [(await read_response(reader))[2] for _ in range(5)]
    assert answers == [b"POST /p? %d" % n for n in range(5)]


async def test_a_chunked_request_body_is_decoded(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")  # fmt: skip
    assert (await read_response(reader))[2] == b"POST /c? hello world"


async def test_expect_100_continue_gets_the_interim_answer_before_the_body(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"PUT /e HTTP/1.1\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"body")
    assert (await read_response(reader))[2] == b"PUT /e? body"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /big HTTP/1.1\r\ncontent-length: 5000\r\n\r\n", 413),
        (
            b"POST /big HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"400\r\n"
            + b"x" * 1024
            + b"\r\n"
            + b"400\r\n"
            + b"x" * 1024
            + b"\r\n",
            413,
        ),
        (b"GET / HTTP/1.1\r\nx-huge: " + b"h" * (70 * 1024) + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"x-a: 1\r\n" * 10_000 + b"\r\n", 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\n\r\n", 505),
        (b"GET /\r\n\r\n", 505),
    ],
    ids=[
        "declared-too-large",
        "chunked-too-large",
        "head-too-large",
        "repeated-headers",
        "malformed",
        "http-2.0",
        "http-0.9",
        "http-0.9-bare",
    ],
)
async def test_requests_that_cannot_be_served_are_refused_and_the_connection_closed(
    serve, request_bytes: bytes, status: int
) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(request_bytes)
    answer_status, headers, _ = await read_response(reader)
    assert (answer_status, headers["connection"]) == (status, "close")
    assert await closed_by_server(reader)


async def test_a_head_that_never_ends_is_refused_as_it_grows(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"GET / HTTP/1.1\r\nx-endless: ")
    sent = 0
    with contextlib.suppress(ConnectionError):
        while (
            sent < 2 * web_protocol.MAX_HEAD
        ):  # the head never ends: no answer could wait for its end
            writer.write(b"v" * 4096)
            await writer.drain()
            sent += 4096
    status, headers, body = await read_response(reader)
    assert (status, headers["connection"]) == (431, "close")
    assert b"limited to 65536 bytes" in body
    assert await closed_by_server(reader)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """All the server sent until it closed the connection, which must happen within
    ``seconds`` (a reset counts as closed)."""
    received = b""
    async with asyncio.timeout(seconds):
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                received += data
    return received


async def test_a_head_dribbled_byte_by_byte_is_cut_off_after_the_head_timeout(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_protocol, "HEAD_TIMEOUT", 0.5)
    monkeypatch.setattr(web, "HEAD_CHECK_INTERVAL", 0.05)
    monkeypatch.setattr(web_protocol, "LINGER", 0.2)
    server = await serve()
    reader, writer = await connect(server)
    head = b"GET / HTTP/1.1\r\nx-slow: " + b"v" * 10_000  # never ends, each byte well in time

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.02)

    dribbling = asyncio.create_task(dribble())
    began = asyncio.get_running_loop().time()
    try:
        received = await closed_within(reader, 5)
    finally:
        dribbling.cancel()
    assert asyncio.get_running_loop().time() - began >= 0.5
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close\r\n" in received and b"within 0.5 seconds" in received
    async with asyncio.timeout(5):
        while server.connections:
            await asyncio.sleep(0.01)  # until the server has let go of it too


async def test_a_connection_that_never_sends_a_byte_is_closed(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "KEEPALIVE_TIMEOUT", 0.3)
    monkeypatch.setattr(web, "HEAD_CHECK_INTERVAL", 0.05)
    server = await serve()
    reader, _ = await connect(server)
    assert await closed_within(reader, 5) == b""  # nothing asked, nothing answered


async def test_a_slow_head_does_not_hold_up_other_connections(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_protocol, "HEAD_TIMEOUT", 60.0)
    server = await serve()
    _, slow = await connect(server)
    slow.write(b"GET / HTTP/1.1\r\nx-slow: ")
    reader, writer = await connect(server)
    writer.write(b"GET /fast HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[2] == b"GET /fast? "
    assert server.connections == 2  # the slow one is not past its timeout yet


async def test_a_body_that_never_ends_is_cut_off_after_the_body_timeout(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head in time followed by a body that trickles (or never comes) holds a connection,
    its buffers and a waiting request for ever unless the body is timed too."""
    monkeypatch.setattr(web_protocol, "BODY_TIMEOUT", 0.5)
    monkeypatch.setattr(web, "HEAD_CHECK_INTERVAL", 0.05)
    monkeypatch.setattr(web_protocol, "LINGER", 0.2)
    served: list[bytes] = []

    async def handler(request: Request) -> Response:
        served.append(request.body)
        return Response(200, b"ok")

    server = await serve(handler, max_body=1_000_000)
    trickled, writer = await connect(server)
    writer.write(b"POST /slow HTTP/1.1\r\ncontent-length: 1000\r\n\r\n")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # each byte well in time, the whole never
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.02)

    silent, _ = await connect(server)  # its body never starts
    _.write(b"POST /silent HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n")
    trickling = asyncio.create_task(trickle())
    began = asyncio.get_running_loop().time()
    try:
        for reader in (trickled, silent):
            received = await closed_within(reader, 5)
            assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
            assert b"connection: close\r\n" in received and b"within 0.5 seconds" in received
    finally:
        trickling.cancel()
    assert asyncio.get_running_loop().time() - began >= 0.5
    assert server._server is not None
    async with asyncio.timeout(5):
        while server.connections or server._server.server_state.tasks:
            await asyncio.sleep(0.01)  # the server let go of both, and their requests ended
    assert served == []  # a cut body is never served


@pytest.mark.parametrize(
    "body",
    [b"3\r\nabc\r\nzz\r\n", b"3\r\nabc\r\n" + b"f" * 20 + b"\r\nabc"],
    ids=["bad-chunk-size", "chunk-size-overflow"],
)
async def test_a_malformed_chunk_mid_body_is_refused_at_once(serve, body: bytes) -> None:
    """The parser fails after the head was handed to the application, which waits for the
    rest of the body: the 400 must not wait for an answer that cannot come."""
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n" + body)
    status, headers, answer = await read_response(reader)
    assert (status, headers["connection"]) == (400, "close")
    assert b"malformed HTTP request" in answer
    assert await closed_by_server(reader)


async def test_endless_trailers_are_refused_as_they_grow(serve) -> None:
    """Trailers after a chunked body's last chunk are a head of their own: unbounded they
    grow the process's memory by the gigabyte (the parser keeps every one)."""
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"POST /t HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n")
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < 4 * web_protocol.MAX_HEAD:
            writer.write(b"x-trailer: " + b"v" * 1000 + b"\r\n")
            await writer.drain()
            sent += 1013
    status, headers, body = await read_response(reader)
    assert (status, headers["connection"]) == (431, "close")
    assert b"limited to 65536 bytes" in body
    assert await closed_by_server(reader)


async def test_trailers_within_bounds_are_taken_and_not_served_as_headers(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"POST /t HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\nx-test: from-trailer\r\n\r\n")  # fmt: skip
    status, headers, body = await read_response(reader)
    assert (status, body, headers["x-seen-header"]) == (200, b"POST /t? hello", "")


async def test_a_request_whose_client_leaves_mid_body_is_never_served(serve) -> None:
    served: list[bytes] = []

    async def handler(request: Request) -> Response:
        served.append(request.body)
        return Response(200, b"ok")

    server = await serve(handler)
    _, writer = await connect(server)
    writer.write(b"POST /x HTTP/1.1\r\ncontent-length: 100\r\n\r\n" + b"a" * 50)
    await writer.drain()
    async with asyncio.timeout(5):
        while not server.connections:
            await asyncio.sleep(0.01)
    writer.close()
    assert server._server is not None
    tasks = server._server.server_state.tasks  # the application's, one per request
    async with asyncio.timeout(5):
        while server.connections or tasks:
            await asyncio.sleep(0.01)  # until the server saw it go and the request ended
    assert served == []  # not called with the 50 bytes that came


async def test_an_upgrade_request_gets_one_answer_and_the_connection_closes(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"GET /up HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
                 b"GET /next HTTP/1.1\r\n\r\n")  # fmt: skip
    status, headers, body = await read_response(reader)
    assert (status, body, headers["connection"]) == (200, b"GET /up? ", "close")
    assert await closed_by_server(reader)  # nothing after the upgrade is read, or answered


async def test_a_refusal_waits_for_the_answer_already_in_progress(serve) -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response(200, b"first")

    server = await serve(slow)
    reader, writer = await connect(server)
    writer.write(b"GET /1 HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n")
    await writer.drain()
    release.set()
    assert (await read_response(reader))[:3:2] == (200, b"first")
    assert (await read_response(reader))[0] == 400


async def test_a_failing_handler_is_a_500_and_the_connection_goes_on(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"GET /boom HTTP/1.1\r\n\r\n")
    status, _, body = await read_response(reader)
    assert status == 500 and b"internal error" in body
    writer.write(b"GET /after HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[2] == b"GET /after? "


async def test_http_1_0_clients_get_one_answer_and_a_close(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert (status, headers["connection"], body) == (200, "close", b"GET /old? ")
    assert await closed_by_server(reader)


def streamer(parts: list[bytes], produced: list[bytes], closed: asyncio.Event) -> web.Handler:
    async def handler(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                for part in parts:
                    produced.append(part)
                    yield part
            finally:
                closed.set()

        return StreamingResponse(body(), headers={"x-kind": "stream"})

    return handler


async def test_a_streamed_answer_arrives_whole_over_chunked_framing(serve) -> None:
    parts = [b"data: %d\n\n" % n for n in range(50)]
    produced: list[bytes] = []
    server = await serve(streamer(parts, produced, asyncio.Event()))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/s")
        again = await client.get(f"http://127.0.0.1:{server.port}/s")  # same connection
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-kind"] == "stream"
    assert response.content == b"".join(parts) == again.content


async def test_a_stream_waits_for_a_client_that_does_not_read(serve) -> None:
    chunk = b"x" * 65536
    parts = [chunk] * 200  # 12.5 MiB: far beyond every socket and transport buffer
    produced: list[bytes] = []
    server = await serve(streamer(parts, produced, asyncio.Event()))
    reader, writer = await connect(server)
    writer.write(b"GET /s HTTP/1.1\r\n\r\n")
    assert server._server is not None
    (connection,) = server._server.server_state.connections
    async with asyncio.timeout(5):
        while not connection.flow.write_paused:
            await asyncio.sleep(0.01)  # until the server is held up by the unread client
    held_at = len(produced)
    assert held_at < len(parts)
    received = 0
    async with asyncio.timeout(20):
        await reader.readuntil(b"\r\n\r\n")
        while received < len(chunk) * len(parts):
            size = int((await reader.readline()).strip(), 16)
            received += len(await reader.readexactly(size + 2)) - 2
    assert len(produced) == len(parts) > held_at


async def test_a_client_leaving_mid_stream_closes_the_body_generator(serve) -> None:
    release = asyncio.Event()
    closed = asyncio.Event()

    async def handler(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield b"first"
                await release.wait()
                yield b"second"
                yield b"third"
            finally:
                closed.set()

        return StreamingResponse(body())

    server = await serve(handler)
    reader, writer = await connect(server)
    writer.write(b"GET /s HTTP/1.1\r\n\r\n")
    async with asyncio.timeout(5):
        await reader.readuntil(b"first\r\n")
    writer.close()
    await writer.wait_closed()
    async with asyncio.timeout(5):
        while server.connections:
            await asyncio.sleep(0.01)  # until the server saw the connection go
    release.set()
    async with asyncio.timeout(5):
        await closed.wait()


async def test_idle_connections_are_closed_after_the_keep_alive_timeout(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "KEEPALIVE_TIMEOUT", 0.05)
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    assert await closed_by_server(reader)


async def test_stop_lets_the_request_in_progress_finish_and_closes_idle_connections(
    serve,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        if request.path == "/slow":
            started.set()
            await release.wait()
        return Response(200, b"done")

    server = await serve(slow)
    busy_reader, busy_writer = await connect(server)
    idle_reader, idle_writer = await connect(server)
    idle_writer.write(b"GET /quick HTTP/1.1\r\n\r\n")
    assert (await read_response(idle_reader))[2] == b"done"
    busy_writer.write(b"GET /slow HTTP/1.1\r\n\r\n")
    async with asyncio.timeout(5):
        await started.wait()
    stopping = asyncio.create_task(server.stop(grace=5))
    assert await closed_by_server(idle_reader)
    release.set()
    status, headers, body = await read_response(busy_reader)
    assert (status, body, headers["connection"]) == (200, b"done", "close")
    await stopping
    with pytest.raises(OSError):
        await connect(server)


async def test_stop_answers_a_request_whose_body_is_still_arriving_at_once(
    serve, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request not yet whole when the server stops could only be served after its body
    came, and the server takes no new work: it gets a 503 at once, rather than holding the
    stop for the whole grace and ending as a cancelled task (an error with a traceback in
    the log)."""
    monkeypatch.setattr(web_protocol, "LINGER", 0.2)
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"POST /upload HTTP/1.1\r\ncontent-length: 100\r\n\r\n" + b"a" * 10)
    await writer.drain()
    assert server._server is not None
    async with asyncio.timeout(5):
        while not server._server.server_state.tasks:  # the request began, its body did not end
            await asyncio.sleep(0.01)
    began = asyncio.get_running_loop().time()
    await server.stop(grace=5)
    assert asyncio.get_running_loop().time() - began < 2
    status, headers, body = await read_response(reader)
    assert (status, headers["connection"]) == (503, "close")
    assert b"shutting down" in body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class RecordingTransport:
    """The connection's real transport, recording what each write call hands it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: Iterable[bytes]) -> None:
        parts = list(parts)
        self.writes.append(b"".join(parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


async def recorded_connection(server: Server) -> tuple[Exchange, RecordingTransport]:
    exchange = await connect(server)
    assert server._server is not None
    async with asyncio.timeout(5):
        while not server.connections:
            await asyncio.sleep(0.01)  # until the server has accepted it
    (connection,) = server._server.server_state.connections
    recording = RecordingTransport(connection.transport)
    connection.transport = recording  # type: ignore[assignment]
    return exchange, recording


async def test_a_whole_answer_goes_out_in_one_write(serve) -> None:
    server = await serve()
    (reader, writer), recording = await recorded_connection(server)
    for n in range(2):
        writer.write(b"POST /w HTTP/1.1\r\ncontent-length: 1\r\n\r\n%d" % n)
        assert (await read_response(reader))[2] == b"POST /w? %d" % n
    assert len(recording.writes) == 2  # one per answer: head and body together
    assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") for w in recording.writes)
    assert recording.writes[1].endswith(b"\r\n\r\nPOST /w? 1")


async def test_a_streamed_answer_head_is_not_held_back(serve) -> None:
    release = asyncio.Event()

    async def handler(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            await release.wait()
            yield b"late"

        return StreamingResponse(body())

    server = await serve(handler)
    (reader, writer), _ = await recorded_connection(server)
    writer.write(b"GET /s HTTP/1.1\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")  # before the first chunk exists
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    release.set()
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"late\r\n")


async def test_an_answer_to_head_is_sent_though_no_body_follows(serve) -> None:
    server = await serve()
    reader, writer = await connect(server)
    writer.write(b"HEAD /h HTTP/1.1\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert (
        head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 9\r\n" in head
    )  # "HEAD /h? "


async def test_a_large_head_then_chunk_framing_alone_is_not_taken_for_endless_trailers(
    serve,
) -> None:
    """The bytes after a body's last byte are bounded, not the head's before it: a head near
    its limit followed by a read of chunk framing alone is an ordinary request."""
    server = await serve()
    reader, writer = await connect(server)
    # As large as a head may be: the limit counts the URL and each header's name and value
    # (and 4 bytes each); the request line and the blank line come on top.
    pad = web_protocol.MAX_HEAD - len(b"/big-head") - (17 + 7 + 4) - (5 + 4)
    head = (b"POST /big-head HTTP/1.1\r\ntransfer-encoding: chunked\r\nx-pad: "
            + b"p" * pad + b"\r\n\r\n")  # fmt: skip
    writer.write(head)
    await writer.drain()
    assert server._server is not None
    async with asyncio.timeout(5):
        while not server._server.server_state.tasks:  # the head was read whole
            await asyncio.sleep(0.01)
    writer.write(b"5\r\n")  # framing only (a read of its own, or with the rest)
    await writer.drain()
    writer.write(b"hello\r\n0\r\n\r\n")
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b"POST /big-head? hello")
