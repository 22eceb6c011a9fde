"""Hostile input on every front door of the gateway: whatever arrives, the answer is a 2xx or
a 4xx in that door's error shape, never a 5xx, never a provider marked misconfigured or its
breaker opened, and the gateway never fetches a URL a request names.

A table of known-nasty cases (not JSON, not an object, nesting far past any limit, huge
arrays, empty and unknown things, odd image URLs, broken data URLs) runs on each door, then
a seeded mutation fuzzer: from a valid request of each door, every value at every depth is
replaced by values of every JSON type (or removed), reproducibly (the seed is in the test).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from .conftest import Pod

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip

VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "model": "auto", "max_tokens": 50, "temperature": 0.5, "tools": [TOOL],
        "tool_choice": "auto", "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in the picture, and get_weather for Paris?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1",
             "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
            {"role": "user", "content": "Thanks, and in Oslo?"},
        ],
    },
    "/v1/responses": {
        "model": "auto", "instructions": "Be brief.", "max_output_tokens": 50, "store": False,
        "tools": [{"type": "function", "name": "get_weather", "parameters": TOOL["function"][
            "parameters"]}],
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                                         {"type": "input_image",
                                          "image_url": f"data:image/png;base64,{PNG}"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
        ],
    },
    "/v1/messages": {
        "model": "auto", "max_tokens": 50, "system": "Be brief.", "temperature": 0.5,
        "tools": [{"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                               "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": "Sunny"}]},
        ],
    },
    "/v1/messages/count_tokens": {
        "model": "auto", "messages": [{"role": "user", "content": "How many tokens?"}],
    },
    "/v1/embeddings": {"model": "auto", "input": ["one", "two"]},
}  # fmt: skip

ODD_URLS = [
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::1]:1/x.png",
    "gopher://127.0.0.1:70/",
    "javascript:alert(1)",
    "data:image/png;base64,@@not base64@@",
    "data:image/png;base64,",
    "data:,plain text",
    "data:text/html;base64,PGgxPg==",
    "data:image/png;base64," + "A" * 3,
    " ",
    "x" * 10_000,
]


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _raw_cases(path: str) -> Iterator[tuple[str, bytes]]:
    valid = VALID[path]
    yield "empty body", b""
    yield "not JSON", b"{model: auto"
    yield "NaN", b'{"model": NaN}'
    yield "an array", b"[]"
    yield "a string", b'"hello"'
    yield "null", b"null"
    yield "a number", b"1e999"
    yield "invalid UTF-8", b'{"model": "\xff\xfe"}'
    yield "a lone surrogate", b'{"model": "\\ud800"}'
    yield "nesting 100000 deep", _deep(100_000)
    yield (
        "nesting 100000 deep in a field",
        b'{"model": "auto", "metadata": ' + _deep(100_000) + b"}",
    )
    yield (
        "nesting 200 deep in a field",
        json.dumps({**valid, "metadata": json.loads(_deep(200))}).encode(),
    )
    yield "an empty object", b"{}"
    yield "duplicate keys", b'{"model": "auto", "model": 1}'
    yield "a huge integer", json.dumps({**valid, "max_tokens": 10**400}).encode()


def _documents(path: str) -> Iterator[tuple[str, Any]]:
    valid = VALID[path]
    key = "input" if path in ("/v1/responses", "/v1/embeddings") else "messages"
    yield "no messages", {**valid, key: []}
    yield "100000 messages", {**valid, key: [{"role": "user", "content": "hi"}] * 100_000}
    yield "100000 strings", {**valid, key: ["hi"] * 100_000}
    yield "an unknown role", {**valid, key: [{"role": "robot", "content": "hi"}]}
    yield "an empty message", {**valid, key: [{}]}
    yield "a message that is a number", {**valid, key: [7]}
    yield "empty content", {**valid, key: [{"role": "user", "content": ""}]}
    yield "empty content parts", {**valid, key: [{"role": "user", "content": []}]}
    yield "an unknown part", {**valid, key: [{"role": "user", "content": [{"type": "video"}]}]}
    yield "a model that is an object", {**valid, "model": {"name": "x"}}
    yield "1000 tools", {**valid, "tools": [TOOL] * 1000}
    for url in ODD_URLS:
        yield f"image {url[:40]!r}", _with_image(path, valid, url)


def _with_image(path: str, valid: dict[str, Any], url: str) -> dict[str, Any]:
    if path == "/v1/chat/completions":
        part = {"type": "image_url", "image_url": {"url": url}}
        return {**valid, "messages": [{"role": "user", "content": [part]}]}
    if path == "/v1/responses":
        part = {"type": "input_image", "image_url": url}
        return {**valid, "input": [{"role": "user", "content": [part]}]}
    if path.startswith("/v1/messages"):
        source = (
            {"type": "url", "url": url}
            if not url.startswith("data:")
            else {"type": "base64", "media_type": "image/png", "data": url.partition(",")[2]}
        )
        return {
            **valid,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": source},
                        {"type": "text", "text": "What is it?"},
                    ],
                }
            ],
        }
    return {**valid, "input": url}


WRONG_VALUES: list[Any] = [
    None, True, -1, 0, -0.0, 1.5, 1e308, 2**64, -(2**63) - 1, "", "x", "\x00", "💥" * 1000,
    [], [None], [[[]]], {}, {"a": 1}, {"type": "text"}, {"role": "user"}, [{"type": "image_url"}],
]  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _paths(sub, (*prefix, index))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    target = copy
    for part in path[:-1]:
        target = target[part]
    if value is _REMOVED:
        if isinstance(target, dict):
            del target[path[-1]]
        else:
            target.pop(path[-1])
    else:
        target[path[-1]] = value
    return copy


_REMOVED = object()


def _mutations(path: str, *, seed: int, count: int, stream: bool) -> list[tuple[str, Any]]:
    """``count`` requests from the door's valid one, each with one value replaced (or
    removed) somewhere, chosen by a seeded random source."""
    rng = random.Random(f"{seed}:{path}:{stream}")
    valid = VALID[path] | ({"stream": True} if stream else {})
    where = list(_paths(valid))
    out = []
    for _ in range(count):
        at = rng.choice(where)
        value = rng.choice([*WRONG_VALUES, _REMOVED] if at else WRONG_VALUES)
        out.append((f"{'.'.join(map(str, at)) or '<root>'} = {value!r}"[:80],
                    _replaced(valid, at, value)))  # fmt: skip
    return out


class Listener:
    """A loopback port that records every connection: an image URL pointing here would show
    the gateway (or anything behind it) fetching it."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def accepted(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def _check(pod: Pod, http: httpx.AsyncClient, path: str, case: str, body: bytes,
                 *, stream: bool = False) -> int:  # fmt: skip
    origin = pod.url.removesuffix("/v1")
    answer = await http.post(origin + path, content=body,
                             headers={"content-type": "application/json"})  # fmt: skip
    where = f"{path} {case}: {answer.status_code} {answer.text[:300]}"
    assert answer.status_code < 500, where
    if answer.status_code >= 400:
        error = answer.json()
        if path.startswith("/v1/messages"):
            assert error["type"] == "error" and error["error"]["type"], where
            assert isinstance(error["error"]["message"], str), where
        else:
            assert isinstance(error["error"]["message"], str) and error["error"]["type"], where
    for name, status in pod.runner.engine.manager.status().items():
        assert status.misconfigured is None, f"{where}: {name} marked {status.misconfigured}"
        assert status.breaker.value == "closed", f"{where}: {name} breaker {status.breaker}"
    return answer.status_code


@pytest.mark.parametrize("path", sorted(VALID))
async def test_a_valid_request_of_each_door_is_answered(
    pod: Pod, http: httpx.AsyncClient, path: str
) -> None:
    """The fuzzer's starting points are valid: what it finds is what its changes broke."""
    code = await _check(pod, http, path, "valid", json.dumps(VALID[path]).encode())
    assert code == (400 if path == "/v1/embeddings" else 200)  # the pod has no embeddings


@pytest.mark.parametrize("path", sorted(VALID))
async def test_hostile_bodies_are_4xx_in_the_doors_shape_and_blame_no_provider(
    pod: Pod, http: httpx.AsyncClient, path: str
) -> None:
    for case, raw in _raw_cases(path):
        await _check(pod, http, path, case, raw)
    for case, document in _documents(path):
        await _check(pod, http, path, case, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("path", "stream"),
    [(path, False) for path in sorted(VALID)]
    + [(path, True) for path in ("/v1/chat/completions", "/v1/messages", "/v1/responses")],
)
async def test_fuzzed_requests_are_answered_or_refused_never_a_server_error(
    pod: Pod, http: httpx.AsyncClient, path: str, stream: bool
) -> None:
    """Seeds 1 to 5 with 1500 mutations each passed too (about 20 s a seed)."""
    for case, document in _mutations(path, seed=12, count=200, stream=stream):
        await _check(pod, http, path, case, json.dumps(document).encode())
        for fake in (pod.claude, pod.gpt, pod.gemini):
            fake.core.update({"outage": False})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
async def test_the_gateway_never_fetches_an_image_url_it_is_sent(
    pod: Pod, http: httpx.AsyncClient, path: str
) -> None:
    async with Listener() as listener:
        for url in (f"http://127.0.0.1:{listener.port}/cat.png",
                    f"https://127.0.0.1:{listener.port}/cat.png"):  # fmt: skip
            body = json.dumps(_with_image(path, VALID[path], url)).encode()
            await _check(pod, http, path, url, body)
        await asyncio.sleep(0.1)  # a fetch in the background would have connected by now
        assert listener.connections == 0


@pytest.mark.parametrize("path", ["/v1/models", "/healthz"])
async def test_get_routes_take_no_body_and_odd_methods_are_405(
    pod: Pod, http: httpx.AsyncClient, path: str
) -> None:
    origin = pod.url.removesuffix("/v1")
    listed = await http.request("GET", origin + path, content=b"{garbage")
    assert listed.status_code == 200
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        refused = await http.request(method, origin + path, content=b"[]")
        assert refused.status_code == 405 and refused.json()["error"]["type"]
    odd = await http.get(origin + path + "?model=" + "x" * 5000)
    assert odd.status_code in (200, 404)
