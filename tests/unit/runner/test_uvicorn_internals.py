"""The parts of uvicorn below its public API that ``runner/web_protocol.py`` builds on.

``GatewayHttpProtocol`` subclasses uvicorn's ``HttpToolsProtocol`` (uvicorn leaves the head
bounds, the version rule and the Upgrade rule to its user) and ``_WholeAnswer`` reads the
state of its ``RequestResponseCycle``. pyproject.toml pins uvicorn and httptools to the releases this
was tested with; when a new release moves any of this, these tests say what moved, before
the behaviour tests in test_web.py fail in less obvious ways.
"""

from __future__ import annotations

import asyncio
import inspect

import httptools
import pytest
import uvicorn
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from llmagents.runner.web import Request, Response, Server
from llmagents.runner.web_protocol import GatewayHttpProtocol

# The hooks GatewayHttpProtocol overrides or calls, with the parameters it passes.
PROTOCOL_METHODS = {
    "connection_made": ["self", "transport"],
    "data_received": ["self", "data"],
    "on_message_begin": ["self"],
    "on_header": ["self", "name", "value"],
    "on_headers_complete": ["self"],
    "on_body": ["self", "body"],
    "on_message_complete": ["self"],
    "on_response_complete": ["self"],
    "_unset_keepalive_if_required": ["self"],
}
# Attributes of a live protocol and of its cycle that web.py and web_protocol.py read or set.
PROTOCOL_ATTRIBUTES = [
    "parser", "url", "headers", "cycle", "pipeline", "transport", "loop", "flow",
    "timeout_keep_alive",
]  # fmt: skip
CYCLE_ATTRIBUTES = [
    "transport", "scope", "keep_alive", "response_started", "response_complete",
    "chunked_encoding", "expected_content_length", "disconnected", "message_event",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(PROTOCOL_METHODS))
def test_the_protocol_hooks_web_py_overrides_are_still_there(name: str) -> None:
    method = getattr(HttpToolsProtocol, name, None)
    assert method is not None, f"uvicorn's HttpToolsProtocol has no {name} any more"
    assert list(inspect.signature(method).parameters) == PROTOCOL_METHODS[name]


def test_the_subclass_overrides_nothing_by_a_name_uvicorn_lacks() -> None:
    ours = {
        n for n, v in vars(GatewayHttpProtocol).items() if callable(v) and not n.startswith("__")
    }
    own = {
        "expire",
        "_head_size",
        "_idle",
        "_refuse",
        "_refuse_body_too_large",
        "refuse_unfinished_body",
        "_write_refusal",
    }
    assert ours - own <= set(dir(HttpToolsProtocol)), "a hook GatewayHttpProtocol overrides is gone"
    assert not own & set(dir(HttpToolsProtocol)), "uvicorn now has a method of ours' name"


def test_the_parser_is_httptools_with_the_calls_web_py_makes() -> None:
    assert httptools_impl.httptools is httptools
    for name in ("feed_data", "get_http_version", "should_upgrade", "get_method"):
        assert hasattr(httptools.HttpRequestParser, name)
    for error in (httptools.HttpParserUpgrade, httptools.HttpParserError):
        assert issubclass(error, Exception)


def test_the_server_steps_web_py_calls_are_coroutines() -> None:
    for name in ("startup", "main_loop", "shutdown"):
        assert inspect.iscoroutinefunction(getattr(uvicorn.Server, name)), name


async def test_a_live_connection_and_its_cycle_have_what_web_py_reads() -> None:
    seen: list[Request] = []

    async def handler(request: Request) -> Response:
        seen.append(request)
        return Response(200, b"ok")

    server = Server(handler, name="internals", max_body=1024)
    await server.start("127.0.0.1", 0)
    try:
        assert server.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /x HTTP/1.1\r\nx-a: 1\r\n\r\n")
        async with asyncio.timeout(5):
            await reader.readuntil(b"ok")
        assert server._server is not None
        (connection,) = server._server.server_state.connections
        assert isinstance(connection, GatewayHttpProtocol)
        for name in PROTOCOL_ATTRIBUTES:
            assert hasattr(connection, name), f"HttpToolsProtocol has no .{name} any more"
        assert connection.url == b"/x"
        assert connection.headers == [(b"x-a", b"1")]  # (name, value) bytes, lower-cased
        cycle = connection.cycle
        assert isinstance(cycle, RequestResponseCycle)
        for name in CYCLE_ATTRIBUTES:
            assert hasattr(cycle, name), f"RequestResponseCycle has no .{name} any more"
        assert (cycle.response_started, cycle.response_complete) == (True, True)
        assert (cycle.chunked_encoding, cycle.expected_content_length) == (False, 0)
        assert isinstance(cycle.keep_alive, bool)
        writer.close()
    finally:
        await server.stop(grace=1)
