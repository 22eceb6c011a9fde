"""The adapters' HTTP client (aiohttp, configured in ``providers/base.py``) against real servers
on loopback written here: raw sockets for broken answers, TLS with a certificate made here,
and a recording forward/CONNECT proxy named by the environment."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from yarl import URL

from llmagents.chat import ChatRequest, Message, Role
from llmagents.errors import (
    BadRequest,
    ClientBusy,
    ConfigError,
    ConnectionFailed,
    MalformedResponse,
    ProviderTimeout,
)
from llmagents.providers import egress, transport
from llmagents.providers.openai import OpenAIAdapter

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
REQUEST = ChatRequest([Message(Role.USER, "hello")])
ANSWER = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()  # fmt: skip
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 whose every connection runs ``handler``."""

    handler: Handler
    tls: ssl.SSLContext | None = None
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
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


def ok(body: bytes = ANSWER, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)  # fmt: skip


def answering(server: list[RawServer], *raw: bytes) -> Handler:
    """Answers the requests of each connection with ``raw`` in turn (then ``ok()``), on
    kept-alive connections; ``b""`` closes the connection instead of answering."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answers = list(raw)
        while True:
            await server[0].read_request(reader)
            answer = answers.pop(0) if answers else ok()
            if not answer:
                return
            writer.write(answer)
            await writer.drain()

    return handler


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def starter(*raw: bytes, handler: Handler | None = None,
                      tls: ssl.SSLContext | None = None) -> RawServer:  # fmt: skip
        ref: list[RawServer] = []
        server = RawServer(handler or answering(ref, *raw), tls)
        ref.append(server)
        servers.append(server)
        return await server.start()

    yield starter
    for server in servers:
        assert server.server is not None
        server.server.close()


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):  # extra authorities: only where a test says
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def adapters() -> AsyncIterator[Callable[..., OpenAIAdapter]]:
    made: list[OpenAIAdapter] = []

    def make(base_url: str, **options: object) -> OpenAIAdapter:
        adapter = OpenAIAdapter(name="p", model="m", base_url=base_url, api_key="sk-test",
                                **options)  # type: ignore[arg-type]  # fmt: skip
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


async def test_calls_reuse_one_kept_alive_connection_and_send_json(start, adapters) -> None:
    server = await start()
    adapter = adapters(server.base_url)
    for _ in range(3):
        assert (await adapter.complete(REQUEST, timeout=2.0)).text == "hi"
    assert server.connections == 1
    head = server.heads[0].decode().lower()
    assert head.startswith("post /v1/chat/completions http/1.1\r\n")
    assert "authorization: bearer sk-test" in head and "content-type: application/json" in head
    assert "accept-encoding" not in head  # compression is never asked for


async def test_a_cookie_the_provider_sets_is_never_sent_back(start, adapters) -> None:
    """An API client keeps no cookies (a load balancer's affinity cookie, say): what a
    request carries is its key and its JSON, nothing earlier answers left behind."""
    server = await start(ok(extra=b"set-cookie: lb=node-7; Path=/\r\n"))
    # By a name: aiohttp's jar takes no cookie from an IP address.
    adapter = adapters(server.base_url.replace("127.0.0.1", "localhost"))
    for _ in range(2):
        assert (await adapter.complete(REQUEST, timeout=2.0)).text == "hi"
    assert len(server.heads) == 2
    assert b"cookie" not in server.heads[1].lower()


# -- size limits ------------------------------------------------------------------------------


async def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(
    start, adapters
) -> None:
    server = await start(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n" + b"x" * 1000)
    adapter = adapters(server.base_url, max_body=64 * 1024)
    with pytest.raises(MalformedResponse, match="announces 1073741824 bytes"):
        await adapter.complete(REQUEST, timeout=2.0)


def chunked_forever(server: list[RawServer], piece: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server[0].read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip
        while True:  # until the client hangs up
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()

    return handler


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_a_body_without_length_is_cut_at_the_limit(start, adapters, streamed) -> None:
    ref: list[RawServer] = []
    # One unending line for the stream (the SSE parser buffers lines), JSON-ish for the whole.
    server = await start(handler=chunked_forever(ref, b"data: " + b"x" * 4096))
    ref.append(server)
    adapter = adapters(server.base_url, max_body=256 * 1024)
    with pytest.raises(MalformedResponse, match="passed 262144 bytes"):
        if streamed:
            async for _ in adapter.stream(REQUEST, timeout=5.0):
                pass
        else:
            await adapter.complete(REQUEST, timeout=5.0)


async def test_a_head_line_over_the_limit_is_a_malformed_answer(start, adapters) -> None:
    server = await start(ok(extra=b"x-long: " + b"a" * (transport.MAX_HEAD_LINE + 10) + b"\r\n"))
    with pytest.raises(MalformedResponse, match="malformed HTTP answer"):
        await adapters(server.base_url).complete(REQUEST, timeout=2.0)


async def test_endless_repeated_headers_fail_fast_without_blocking_the_event_loop(
    start, adapters
) -> None:
    async def headers_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"x-a: 1\r\n" * 10_000)
            await writer.drain()

    server = await start(handler=headers_forever)
    gaps: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.005)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    began = asyncio.get_running_loop().time()
    with pytest.raises(MalformedResponse, match="malformed HTTP answer"):
        await adapters(server.base_url).complete(REQUEST, timeout=5.0)
    took = asyncio.get_running_loop().time() - began
    ticking.cancel()
    assert took < 1.0  # refused at the header count limit, long before the deadline
    assert max(gaps, default=0.0) < 0.2


# -- the connection pool ----------------------------------------------------------------------


async def test_waiting_for_a_free_connection_is_client_busy_not_a_provider_timeout(
    start, adapters
) -> None:
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await release.wait()
            writer.write(ok())
            await writer.drain()

    server = await start(handler=held)
    adapter = adapters(server.base_url, max_connections=1)
    first = asyncio.create_task(adapter.complete(REQUEST, timeout=5.0))
    async with asyncio.timeout(5):
        while not server.heads:
            await asyncio.sleep(0.01)  # until the first call holds the only connection
    with pytest.raises(ClientBusy, match="all 1 connections stayed busy"):
        await adapter.complete(REQUEST, timeout=0.2)
    release.set()
    assert (await first).text == "hi"
    assert len(server.heads) == 1  # the busy call never reached the provider
    # A slow provider, once the call has its connection, is still the provider's timeout.
    release.clear()
    with pytest.raises(ProviderTimeout):
        await adapter.complete(REQUEST, timeout=0.2)


async def test_a_connection_closed_while_idle_is_retried_once_on_a_fresh_one(
    start, adapters, monkeypatch
) -> None:
    monkeypatch.setattr(transport, "STALE_AFTER", 0.2)
    # The second request on the first connection finds it closed (the race of a server's idle
    # timeout with the client's reuse); the retry opens a second connection.
    server = await start(ok(), b"")
    adapter = adapters(server.base_url)
    assert (await adapter.complete(REQUEST, timeout=2.0)).text == "hi"
    await asyncio.sleep(0.3)  # idle for longer than STALE_AFTER
    assert (await adapter.complete(REQUEST, timeout=2.0)).text == "hi"
    assert server.connections == 2 and len(server.heads) == 3


async def test_a_connection_busy_a_moment_ago_that_breaks_is_not_sent_again(
    start, adapters
) -> None:
    server = await start(ok(), b"")  # as above, but the second request follows at once
    adapter = adapters(server.base_url)
    await adapter.complete(REQUEST, timeout=2.0)
    with pytest.raises(ConnectionFailed, match="connection broke off"):
        await adapter.complete(REQUEST, timeout=2.0)
    assert len(server.heads) == 2  # the provider may have charged it: the engine decides


async def test_a_fresh_connection_that_breaks_is_not_sent_again(start, adapters) -> None:
    server = await start(b"")
    with pytest.raises(ConnectionFailed, match="connection broke off"):
        await adapters(server.base_url).complete(REQUEST, timeout=2.0)
    assert server.connections == 1 and len(server.heads) == 1


async def test_a_closed_port_names_the_address(start, adapters) -> None:
    server = await start()
    url, port = server.base_url, server.port
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()
    with pytest.raises(ConnectionFailed, match=f"cannot connect to 127.0.0.1:{port}"):
        await adapters(url).complete(REQUEST, timeout=2.0)


def test_one_adapter_serves_one_event_loop_after_another(adapters) -> None:
    async def once() -> str:
        ref: list[RawServer] = []
        server = RawServer(answering(ref))
        ref.append(server)
        await server.start()
        try:
            adapter.base_url = server.base_url
            adapter._chat_urls = {
                s: URL(server.base_url + "/chat/completions") for s in (False, True)
            }
            return (await adapter.complete(REQUEST, timeout=2.0)).text
        finally:
            assert server.server is not None
            server.server.close()

    adapter = adapters("http://127.0.0.1:9/v1")
    for _ in range(2):  # each asyncio.run is a new loop; the last loop's session is left behind
        assert asyncio.run(once()) == "hi"


# -- redirects, TLS, proxies, headers ---------------------------------------------------------


async def test_a_redirect_is_not_followed(start, adapters) -> None:
    elsewhere = await start()
    server = await start(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: %s/chat/completions\r\n"
                         b"content-length: 0\r\n\r\n" % elsewhere.base_url.encode())  # fmt: skip
    with pytest.raises(BadRequest) as refused:
        await adapters(server.base_url).complete(REQUEST, timeout=2.0)
    assert refused.value.status_code == 307
    assert elsewhere.connections == 0  # the key went nowhere else


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


async def test_tls_is_verified_against_the_public_authorities(start, adapters, certificate) -> None:
    server = await start(tls=server_tls(certificate))
    with pytest.raises(ConnectionFailed, match="TLS certificate not trusted"):
        await adapters(server.base_url).complete(REQUEST, timeout=2.0)
    assert not server.heads


@dataclass(frozen=True)
class PrivateCA:
    ca: Path
    """The authority's certificate (PEM), what a platform team hands out."""
    server: tuple[Path, Path]
    """A certificate for 127.0.0.1 it signed, and its key."""
    subject_hash: str
    """The name OpenSSL looks the authority up by in a ``SSL_CERT_DIR`` (``<hash>.0``)."""


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    """A private CA and a server certificate it signed, made with openssl for this test run."""
    folder = tmp_path_factory.mktemp("ca")
    ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key, csr = folder / "cert.pem", folder / "key.pem", folder / "cert.csr"
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(ca_key),
         "-out", str(ca), "-subj", "/CN=llmagents test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(extensions)],
    ):  # fmt: skip
        subprocess.run(["openssl", *command], check=True, capture_output=True)
    subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(ca)],
                                  check=True, capture_output=True, text=True).stdout  # fmt: skip
    return PrivateCA(ca, (cert, key), subject_hash.strip())


async def test_ssl_cert_file_adds_a_private_ca_to_the_public_ones(
    start, adapters, private_ca, monkeypatch
) -> None:
    server = await start(tls=server_tls(private_ca.server))
    with pytest.raises(ConnectionFailed, match="TLS certificate not trusted"):
        await adapters(server.base_url).complete(REQUEST, timeout=2.0)

    monkeypatch.setenv("SSL_CERT_FILE", str(private_ca.ca))
    assert (await adapters(server.base_url).complete(REQUEST, timeout=2.0)).text == "hi"
    # Added, not instead: certifi's authorities are still there.
    context = egress.tls_context()
    assert len(context.get_ca_certs()) > 100
    subject = (("commonName", "llmagents test CA"),)
    assert any(subject in ca["subject"] for ca in context.get_ca_certs())


async def test_ssl_cert_dir_adds_a_private_ca(start, adapters, private_ca, monkeypatch, tmp_path):
    (tmp_path / f"{private_ca.subject_hash}.0").write_bytes(private_ca.ca.read_bytes())
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    server = await start(tls=server_tls(private_ca.server))
    assert (await adapters(server.base_url).complete(REQUEST, timeout=2.0)).text == "hi"


@pytest.mark.parametrize("content", [None, b"", b"not a certificate\n"])
def test_an_unusable_ssl_cert_file_fails_the_start_naming_the_variable(
    monkeypatch, tmp_path: Path, content: bytes | None
) -> None:
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with pytest.raises(ConfigError, match=f"SSL_CERT_FILE={bundle} cannot be used as CA bundle"):
        OpenAIAdapter(name="p", model="m", base_url="https://gateway.internal/v1", api_key="k")


def test_an_ssl_cert_dir_that_is_not_a_directory_fails_the_start(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"SSL_CERT_DIR=.*is not a readable directory"):
        OpenAIAdapter(name="p", model="m", base_url="https://gateway.internal/v1", api_key="k")


async def test_an_https_proxy_with_a_corporate_ca_is_trusted_through_ssl_cert_file(
    start, adapters, private_ca, monkeypatch
) -> None:
    origin = await start(tls=server_tls(private_ca.server))
    proxy = Proxy()
    via = await start(handler=proxy.serve, tls=server_tls(private_ca.server))
    monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{via.port}")
    monkeypatch.setenv("SSL_CERT_FILE", str(private_ca.ca))
    assert (await adapters(origin.base_url).complete(REQUEST, timeout=5.0)).text == "hi"
    assert proxy.asked == [f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"]


@dataclass
class Proxy:
    """A forward and CONNECT proxy that records what it was asked."""

    asked: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head.decode("latin-1"))
        line, *headers = head.decode("latin-1").split("\r\n")
        self.asked.append(line)
        self.authorizations += [h.split(":", 1)[1].strip() for h in headers
                                if h.lower().startswith("proxy-authorization:")]  # fmt: skip
        method, target, _ = line.split(" ")
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


async def test_the_environment_names_the_proxy_with_its_credentials(
    start, adapters, monkeypatch
) -> None:
    origin = await start()
    proxy = Proxy()
    via = await start(handler=proxy.serve)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@127.0.0.1:{via.port}")
    assert (await adapters(origin.base_url).complete(REQUEST, timeout=2.0)).text == "hi"
    assert proxy.asked == [f"POST http://127.0.0.1:{origin.port}/v1/chat/completions HTTP/1.1"]
    assert proxy.authorizations == ["Basic dXNlcjpzZWNyZXQ="]  # user:secret

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert (await adapters(origin.base_url).complete(REQUEST, timeout=2.0)).text == "hi"
    assert len(proxy.asked) == 1  # exempted: straight to the origin


async def test_https_goes_through_a_connect_tunnel_and_is_still_verified(
    start, adapters, certificate, monkeypatch
) -> None:
    origin = await start(tls=server_tls(certificate))
    proxy = Proxy()
    via = await start(handler=proxy.serve)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{via.port}")
    with pytest.raises(ConnectionFailed, match="TLS certificate not trusted"):
        await adapters(origin.base_url).complete(REQUEST, timeout=2.0)
    assert proxy.asked == [f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"]
    assert not origin.heads  # the proxy saw only the tunnel, the origin no request
    assert "sk-test" not in "".join(proxy.heads)  # the key never goes to the proxy in the clear


@pytest.fixture
def trusting(certificate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapters trust this run's certificate too, as they would a proxy's or provider's
    whose authority is in the CA bundle; verification itself stays on."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    monkeypatch.setattr(egress, "tls_context", lambda: context)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
async def test_an_https_proxy_is_spoken_to_over_tls_and_tunnels_tls_inside(
    start, adapters, certificate, trusting, monkeypatch, variable
) -> None:
    origin = await start(tls=server_tls(certificate))
    proxy = Proxy()
    via = await start(handler=proxy.serve, tls=server_tls(certificate))  # speaks only TLS
    monkeypatch.setenv(variable, f"https://user:secret@127.0.0.1:{via.port}")
    assert (await adapters(origin.base_url).complete(REQUEST, timeout=5.0)).text == "hi"
    assert proxy.asked == [f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"]
    assert proxy.authorizations == ["Basic dXNlcjpzZWNyZXQ="]  # user:secret, inside TLS
    assert origin.heads and b"authorization: Bearer sk-test" in origin.heads[0]
    assert "sk-test" not in "".join(proxy.heads)  # the key went through the inner TLS only


def test_tls_inside_tls_works_on_the_runner_s_uvloop(certificate, trusting, monkeypatch) -> None:
    async def scenario() -> str:
        origin = await RawServer(answering([]), server_tls(certificate)).start()
        origin.handler = answering([origin])
        proxy = Proxy()
        via = await RawServer(proxy.serve, server_tls(certificate)).start()
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{via.port}")
        async with OpenAIAdapter(name="p", model="m", base_url=origin.base_url,
                                 api_key="sk-test") as adapter:  # fmt: skip
            answer = await adapter.complete(REQUEST, timeout=5.0)
        assert proxy.asked == [f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"]
        for server in (origin, via):
            assert server.server is not None
            server.server.close()
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        return answer.text

    assert uvloop.run(scenario()) == "hi"


async def test_an_http_origin_through_an_https_proxy_is_forwarded_over_tls(
    start, adapters, certificate, trusting, monkeypatch
) -> None:
    origin = await start()
    proxy = Proxy()
    via = await start(handler=proxy.serve, tls=server_tls(certificate))
    monkeypatch.setenv("HTTP_PROXY", f"https://127.0.0.1:{via.port}")
    assert (await adapters(origin.base_url).complete(REQUEST, timeout=5.0)).text == "hi"
    assert proxy.asked == [f"POST http://127.0.0.1:{origin.port}/v1/chat/completions HTTP/1.1"]


async def test_an_https_proxy_is_verified_before_anything_is_sent(
    start, adapters, certificate, monkeypatch
) -> None:
    origin = await start(tls=server_tls(certificate))
    proxy = Proxy()
    via = await start(handler=proxy.serve, tls=server_tls(certificate))
    monkeypatch.setenv("HTTPS_PROXY", f"https://user:secret@127.0.0.1:{via.port}")
    with pytest.raises(ConnectionFailed, match="TLS certificate not trusted"):
        await adapters(origin.base_url).complete(REQUEST, timeout=5.0)
    assert not proxy.asked and not origin.heads  # no CONNECT, no credentials, no request


def test_an_https_proxy_is_kept_rather_than_dropped_for_a_direct_connection(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.internal:3129")
    assert egress.env_proxy("https://api.openai.com/v1") == URL("https://proxy.internal:3129")
    monkeypatch.setenv("NO_PROXY", ".openai.com")
    assert egress.env_proxy("https://api.openai.com/v1") is None


def test_a_proxy_s_credentials_may_come_from_a_netrc(monkeypatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine proxy.internal login user password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.internal:3129")
    proxy = egress.env_proxy("https://api.openai.com/v1")
    assert proxy == URL("https://user:secret@proxy.internal:3129")


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "socks5h://proxy.internal:1080"])
@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
def test_a_proxy_scheme_that_cannot_be_spoken_is_refused_by_name(
    monkeypatch, proxy, variable
) -> None:
    monkeypatch.setenv(variable, proxy)
    with pytest.raises(ConfigError, match=rf"^{variable}=socks5h?://.* only http:// and https://"):
        OpenAIAdapter(name="p", model="m", base_url="https://api.openai.com/v1", api_key="k")


def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="header authorization has a line break") as refused:
        OpenAIAdapter(name="p", model="m", base_url="https://api.openai.com/v1",
                      api_key="sk-secret\r\nx-evil: 1")  # fmt: skip
    assert "sk-secret" not in str(refused.value)
