"""The sidecar over HTTP on loopback, serving the tiny model with real onnxruntime."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from llmagents.onnx import Delta, SamplingParams, ServerSettings, Sidecar, TextGenerator
from llmagents.onnx.main import serve
from llmagents.onnx.tiny import TINY_MODEL_NAME, build_tiny_model
from tooling.polling import eventually_async

HELLO = [{"role": "user", "content": "Hello! How can I help you today?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@asynccontextmanager
async def running(
    settings: ServerSettings, loader: Callable[[], TextGenerator] | None = None
) -> AsyncIterator[tuple[Sidecar, httpx.AsyncClient]]:
    sidecar = Sidecar(settings, loader=loader)
    runner = web.AppRunner(sidecar.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield sidecar, client
    finally:
        await runner.cleanup()


@asynccontextmanager
async def ready(tiny_dir: Path, **limits: int) -> AsyncIterator[httpx.AsyncClient]:
    async with running(ServerSettings(model_dir=tiny_dir, **limits)) as (sidecar, client):
        await asyncio.wait_for(sidecar.loaded.wait(), timeout=30)
        yield client


def chat(**extra: object) -> dict[str, object]:
    return {"model": TINY_MODEL_NAME, "messages": HELLO, "temperature": 0, **extra}


async def test_readiness_is_false_until_the_model_has_loaded(tiny_dir: Path) -> None:
    release = threading.Event()

    def slow_loader() -> TextGenerator:
        release.wait(timeout=30)
        return TextGenerator(tiny_dir, threads=1)

    async with running(ServerSettings(model_dir=tiny_dir), slow_loader) as (sidecar, client):
        assert (await client.get("/healthz")).status_code == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503 and not_ready.json()["status"] == "loading"
        early = await client.post("/v1/chat/completions", json=chat(max_tokens=2))
        assert early.status_code == 503 and early.headers["Retry-After"] == "1"
        assert early.json()["error"]["code"] == "model_not_ready"
        release.set()
        await asyncio.wait_for(sidecar.loaded.wait(), timeout=30)
        assert (await client.get("/readyz")).json() == {"status": "ready", "model": TINY_MODEL_NAME}


async def test_greedy_answers_are_deterministic_and_count_usage(tiny_dir: Path) -> None:
    generator = TextGenerator(tiny_dir, threads=1)
    prompt_tokens = len(generator.format.prompt(HELLO))
    async with ready(tiny_dir) as client:
        answers = [
            (await client.post("/v1/chat/completions", json=chat(max_tokens=12))).json()
            for _ in range(2)
        ]
    first, second = answers
    assert first["choices"][0]["message"]["content"] == second["choices"][0]["message"]["content"]
    assert first["choices"][0]["message"]["content"]
    assert first["object"] == "chat.completion" and first["model"] == TINY_MODEL_NAME
    assert first["choices"][0]["finish_reason"] == "length"
    assert {k: v for k, v in first["usage"].items() if v is not None} == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 12,
        "total_tokens": prompt_tokens + 12,
    }


async def test_streamed_chunks_add_up_to_the_plain_answer(tiny_dir: Path) -> None:
    async with ready(tiny_dir) as client:
        plain = (await client.post("/v1/chat/completions", json=chat(max_tokens=10))).json()
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json=chat(max_tokens=10, stream=True, stream_options={"include_usage": True}),
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [
                line.removeprefix("data: ")
                async for line in response.aiter_lines()
                if line.startswith("data: ")
            ]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


@pytest.mark.parametrize(
    ("body", "status", "code_or_param"),
    [
        (chat(model="gpt-4o"), 404, "model_not_found"),
        ({"model": TINY_MODEL_NAME}, 400, "messages"),
        (chat(temperature="hot"), 400, "temperature"),
        (chat(max_tokens=0), 400, "max_tokens"),
        (
            chat(tools=[{"type": "function", "function": {"name": "f"}}]),
            400,
            "unsupported_capability",
        ),
        (chat(max_tokens=True), 400, "max_tokens"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            400,
            "messages[0].content[0].image_url",
        ),
        (
            chat(messages=[{"role": "user", "content": "word " * 600}]),
            400,
            "context_length_exceeded",
        ),
    ],
)
async def test_bad_requests_get_openai_shaped_errors(
    tiny_dir: Path, body: dict[str, object], status: int, code_or_param: str
) -> None:
    async with ready(tiny_dir) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert code_or_param in (error["code"], error["param"])


async def test_a_body_that_is_not_json_is_a_bad_request(tiny_dir: Path) -> None:
    async with ready(tiny_dir) as client:
        response = await client.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_models_lists_the_served_name(tiny_dir: Path) -> None:
    async with ready(tiny_dir) as client:
        models = (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == [TINY_MODEL_NAME]
    # What it can do, as the engine assumes for the onnx type: text, streamed.
    assert models["data"][0]["capabilities"] == ["streaming"]


class GatedGenerator(TextGenerator):
    """The real generator, holding its first token until the test opens the gate."""

    gate = threading.Event()
    started = threading.Event()

    def stream(self, prompt: list[int], params: SamplingParams) -> Iterator[Delta]:
        self.started.set()
        self.gate.wait(timeout=30)
        yield from super().stream(prompt, params)


async def test_a_full_queue_answers_503_with_retry_after(tiny_dir: Path) -> None:
    settings = ServerSettings(model_dir=tiny_dir, max_concurrency=1, max_queue=1)
    async with running(settings, lambda: GatedGenerator(tiny_dir, threads=1)) as (sidecar, client):
        await asyncio.wait_for(sidecar.loaded.wait(), timeout=30)
        GatedGenerator.gate.clear()
        busy = asyncio.create_task(client.post("/v1/chat/completions", json=chat(max_tokens=3)))
        await asyncio.to_thread(GatedGenerator.started.wait, 30)
        queued = asyncio.create_task(client.post("/v1/chat/completions", json=chat(max_tokens=3)))
        await eventually_async(
            lambda: sidecar._waiting >= 1, timeout=10, every=0.01, what="a queued request"
        )
        refused = await client.post("/v1/chat/completions", json=chat(max_tokens=3))
        GatedGenerator.gate.set()
        done = [await busy, await queued]
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "queue_full"
    assert [r.status_code for r in done] == [200, 200]


async def test_a_missing_model_directory_fails_readiness_with_the_reason(tmp_path: Path) -> None:
    settings = ServerSettings(model_dir=tmp_path / "nowhere")
    async with running(settings) as (sidecar, client):
        await asyncio.wait_for(sidecar.loaded.wait(), timeout=30)
        readyz = await client.get("/readyz")
        answer = await client.post("/v1/chat/completions", json=chat())
    assert readyz.status_code == 503 and readyz.json()["status"] == "failed"
    assert "does not exist" in readyz.json()["error"]
    assert answer.status_code == 503 and "does not exist" in answer.json()["error"]["message"]


async def test_the_server_command_exits_1_when_the_model_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{}")
    status = await asyncio.wait_for(
        serve(ServerSettings(model_dir=tmp_path), host="127.0.0.1", port=0), timeout=30
    )
    assert status == 1
