"""The adapters' HTTP client against real servers on loopback: raw sockets, TLS with a
certificate made here, and proxies (forward and CONNECT) written here."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from yarl import URL

from llmagents.providers.http_client import (
    STREAM_BUFFER,
    CannotConnect,
    ConnectionBroke,
    HttpClient,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 whose every connection runs ``handler``."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    heads: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    def url(self, path: str = "/v1/x") -> URL:
        scheme = "https" if self.tls else "http"
        return URL(f"{scheme}://127.0.0.1:{self.port}{path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request's head and body (by its content-length)."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return head + await reader.readexactly(length)


def answer(body: bytes, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def keep_alive(server_ref: list[RawServer], respond: Callable[[bytes], bytes]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await server_ref[0].read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(respond(request))
            await writer.drain()

    return handler


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def starter(handler: Handler | None = None, respond: Callable[[bytes], bytes]
                      | None = None, tls: ssl.SSLContext | None = None) -> RawServer:  # fmt: skip
        ref: list[RawServer] = []
        if handler is None:
            handler = keep_alive(ref, respond or (lambda request: answer(b"ok")))
        server = RawServer(handler, tls)
        ref.append(server)
        servers.append(server)
        return await server.start()

    yield starter
    for server in servers:
        assert server.server is not None
        server.server.close()


def client(**options: object) -> HttpClient:
    settings: dict[str, object] = {"tls": ssl.create_default_context(), "headers": {},
                                   "proxy": None, "connect_timeout": 2.0, "max_connections": 8}
    settings.update(options)
    return HttpClient(**settings)  # type: ignore[arg-type]


async def test_requests_reuse_one_keep_alive_connection(start) -> None:
    server = await start(respond=lambda request: answer(request.split(b"\r\n\r\n", 1)[1]))
    http = client(headers={"authorization": "Bearer k"})
    for n in range(3):
        got = await http.request("POST", server.url(), body=b'{"n":%d}' % n)
        assert (got.status, got.body) == (200, b'{"n":%d}' % n)
    await http.aclose()
    assert server.connections == 1
    head = server.heads[0].decode()
    assert head.startswith("POST /v1/x HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}" in head and "authorization: Bearer k" in head
    assert "content-type: application/json" in head


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
         b"abcde"),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end", b"until the end"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"after interim"), b"after interim"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ],
    ids=["chunked", "close-delimited", "interim-100", "no-content"],
)
async def test_every_framing_of_an_answer_is_read_whole(start, raw: bytes, body: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(raw)
        await writer.drain()
        if b"connection: close" in raw:
            writer.close()

    server = await start(handler)
    http = client()
    assert (await http.request("GET", server.url())).body == body
    await http.aclose()


async def test_headers_are_read_by_lower_case_name(start) -> None:
    server = await start(respond=lambda r: answer(b"{}", extra=b"Retry-After: 7\r\nX-A: 1\r\n"
                                                  b"x-a: 2\r\n"))  # fmt: skip
    http = client()
    got = await http.request("GET", server.url())
    await http.aclose()
    assert got.headers["retry-after"] == "7" and got.headers["x-a"] == "1, 2"


async def test_no_more_than_max_connections_are_open_at_once(start) -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await release.wait()
            writer.write(answer(b"ok"))
            await writer.drain()

    server = await start(slow)
    http = client(max_connections=2)
    calls = [asyncio.create_task(http.request("GET", server.url())) for _ in range(6)]
    async with asyncio.timeout(5):
        while len(server.heads) < 2:
            await asyncio.sleep(0.01)  # until the first two are waiting at the server
    release.set()
    assert [c.body for c in await asyncio.gather(*calls)] == [b"ok"] * 6
    await http.aclose()
    assert server.most_open == 2 and server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(start) -> None:
    async def one_answer_then_close(reader: asyncio.StreamReader,
                                    writer: asyncio.StreamWriter) -> None:  # fmt: skip
        await server.read_request(reader)
        writer.write(answer(b"ok"))  # says keep-alive, then closes anyway
        await writer.drain()

    server = await start(one_answer_then_close)
    http = client()
    assert (await http.request("GET", server.url())).body == b"ok"
    idle = [c for pool in http._idle.values() for c in pool]
    async with asyncio.timeout(5):
        while not all(connection.closed for connection in idle):
            await asyncio.sleep(0.01)  # until the client saw the server's close
    assert (await http.request("GET", server.url())).body == b"ok"
    await http.aclose()
    assert server.connections == 2


async def test_an_answer_cut_off_is_an_error_and_the_request_is_not_sent_again(start) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()

    server = await start(cut)
    http = client()
    with pytest.raises(ConnectionBroke, match="before the answer ended"):
        await http.request("POST", server.url(), body=b"{}")
    await http.aclose()
    assert len(server.heads) == 1


async def test_a_malformed_answer_is_an_error(start) -> None:
    server = await start(respond=lambda request: b"SMTP ready\r\n\r\n")
    http = client()
    with pytest.raises(ConnectionBroke, match="malformed"):
        await http.request("GET", server.url())
    await http.aclose()


async def test_a_closed_port_cannot_connect_and_names_the_address(start) -> None:
    server = await start()
    url = server.url()
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()
    http = client()
    with pytest.raises(CannotConnect, match=f"127.0.0.1:{url.port}"):
        await http.request("GET", url)


async def test_a_large_answer_arrives_whole_streamed_or_not(start) -> None:
    piece = bytes(range(256)) * 256  # 64 KiB
    count = (STREAM_BUFFER // len(piece)) * 8  # far past the point where reading pauses

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(count):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = await start(chunked)
    http = client()
    async with http.stream("POST", server.url(), body=b"{}") as streamed:
        received = [chunk async for chunk in streamed.chunks()]
    assert b"".join(received) == piece * count
    assert (await http.request("POST", server.url(), body=b"{}")).body == piece * count
    await http.aclose()


# -- TLS and proxies --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl for this test run."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


async def test_tls_verifies_the_server_against_the_given_authorities(start, certificate) -> None:
    server = await start(tls=server_tls(certificate))
    trusting = client(tls=ssl.create_default_context(cafile=str(certificate[0])))
    assert (await trusting.request("GET", server.url())).body == b"ok"
    await trusting.aclose()

    with pytest.raises(CannotConnect, match="certificate not trusted"):
        await client().request("GET", server.url())


@dataclass
class Proxy:
    """A forward and CONNECT proxy that records what it was asked."""

    asked: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    refuse: bool = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *headers = head.decode("latin-1").split("\r\n")
        self.asked.append(line)
        self.authorizations += [h.split(":", 1)[1].strip() for h in headers
                                if h.lower().startswith("proxy-authorization:")]  # fmt: skip
        method, target, _ = line.split(" ")
        if self.refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = URL(target)
            up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
            up_writer.write(head)  # servers accept the absolute form too
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def test_http_goes_through_a_forward_proxy_with_its_credentials(start) -> None:
    origin = await start()
    proxy = Proxy()
    via = await start(proxy.serve)
    http = client(proxy=f"http://user:secret@127.0.0.1:{via.port}")
    assert (await http.request("GET", origin.url("/v1/models?limit=2"))).body == b"ok"
    await http.aclose()
    assert proxy.asked == [f"GET http://127.0.0.1:{origin.port}/v1/models?limit=2 HTTP/1.1"]
    assert proxy.authorizations == ["Basic dXNlcjpzZWNyZXQ="]  # user:secret


async def test_https_goes_through_a_connect_tunnel(start, certificate) -> None:
    origin = await start(tls=server_tls(certificate))
    proxy = Proxy()
    via = await start(proxy.serve)
    http = client(tls=ssl.create_default_context(cafile=str(certificate[0])),
                  proxy=f"http://127.0.0.1:{via.port}")  # fmt: skip
    for _ in range(2):
        assert (await http.request("GET", origin.url())).body == b"ok"
    await http.aclose()
    assert proxy.asked == [f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"]  # one tunnel, reused
    assert origin.heads[0].startswith(b"GET /v1/x HTTP/1.1\r\n")


async def test_a_proxy_refusing_the_tunnel_cannot_connect(start) -> None:
    proxy = Proxy(refuse=True)
    via = await start(proxy.serve)
    http = client(proxy=f"http://127.0.0.1:{via.port}")
    with pytest.raises(CannotConnect, match="403 Forbidden"):
        await http.request("GET", URL("https://127.0.0.1:9/v1/x"))


# -- event loops ------------------------------------------------------------------------------


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's naming)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def threaded_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_one_client_serves_one_event_loop_after_another(threaded_server: str) -> None:
    http = client()
    for _ in range(2):  # each asyncio.run is a new loop; the pool of the last one is gone
        assert asyncio.run(http.request("GET", URL(threaded_server))).body == b"ok"


def test_a_header_value_with_a_line_break_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="authorization has a line break") as refused:
        client(headers={"authorization": "Bearer sk-secret\r\nx-evil: 1"})
    assert "sk-secret" not in str(refused.value)
