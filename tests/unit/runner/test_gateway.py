"""The gateway, spoken to by OpenAI's own client, with real fake providers behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from llmagents.runner.lifecycle import Runner

from .conftest import Edges, Fakes, config, openai_client

MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name three colours of the rainbow"}]  # fmt: skip


async def test_a_plain_call_falls_back_and_is_charged(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"outage": True})
    raw = await openai_client(url).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES
    )
    answer = raw.parse()
    assert raw.headers["x-llmagents-provider"] == "fallback"
    assert answer.choices[0].message.content.startswith("[fake-openai:gpt-4.1] answer to:")
    assert answer.usage.completion_tokens > 0
    spend = runner.engine.manager.spend_by_provider["fallback"]
    assert spend.output_tokens == answer.usage.completion_tokens
    assert float(raw.headers["x-llmagents-cost-usd"]) == pytest.approx(spend.cost)


async def test_a_stream_falls_back_before_its_first_byte(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"script": ["503"]})
    stream = await openai_client(url).chat.completions.create(
        model="auto", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[fake-openai:gpt-4.1] answer to: Name three colours")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert runner.engine.manager.spend_by_provider["fallback"].calls == 1
    assert runner.engine.manager.current_provider == "fallback"


async def test_a_provider_failing_mid_stream_ends_it_with_an_error_the_client_sees(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"script": ["stream_error"], "stream_break_after": 2})
    stream = await openai_client(url).chat.completions.create(model="auto", messages=MESSAGES,
                                                       stream=True)  # fmt: skip
    received = []
    with pytest.raises(openai.APIError, match="failed mid-answer"):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert len("".join(received).split()) == 2  # the two words that did arrive
    failures = runner.metrics.failures.labels("agent-a", "primary", "server_error")
    assert failures._value.get() == 1
    assert runner.engine.manager.status()["primary"].success_rate == 0.0


async def test_a_broken_connection_mid_stream_is_never_a_clean_end(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    _, url = served
    fakes.primary.core.update({"script": ["break"], "stream_break_after": 1})
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/chat/completions",
                                   json={"model": "x", "messages": MESSAGES, "stream": True})  # fmt: skip
    assert response.status_code == 200
    assert '"error"' in response.text and "[DONE]" not in response.text


async def test_an_exhausted_budget_is_refused_without_retries(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    runner.engine.manager.budget.charge(100)
    with pytest.raises(openai.RateLimitError) as caught:
        await openai_client(url).chat.completions.create(model="auto", messages=MESSAGES)
    assert caught.value.code == "budget_exhausted"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fakes.primary.stats.requests == 0


async def test_no_provider_answering_is_a_503_naming_each_provider(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    _, url = served
    fakes.primary.core.update({"outage": True})
    fakes.fallback.core.update({"outage": True})
    with pytest.raises(openai.InternalServerError) as caught:
        await openai_client(url).chat.completions.create(model="auto", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert "primary" in str(caught.value) and "fallback" in str(caught.value)


BAD_REQUESTS = {
    "temperature out of range": ({"temperature": 2.5}, "temperature"),
    "non-finite number": (b'"temperature": NaN', "temperature"),
    "non-finite number in an unknown field": (b'"logit_scale": Infinity', None),
    "boolean for an integer": ({"max_tokens": True}, "max_tokens"),
    "integer that overflows": ({"max_completion_tokens": 2**64}, "max_completion_tokens"),
    "seed beyond int64": ({"seed": 2**63}, "seed"),
    "lone surrogate": (b'"user": "\\ud800"', None),
    "tool_choice naming no tool": ({"tool_choice": {"type": "function",
                                                    "function": {"name": "nowhere"}}}, None),
    # OpenAI's API refuses it; answered in text, the client's demand for a call is lost.
    "tool_choice required without tools": ({"tool_choice": "required"}, "tool_choice"),
    "tool_choice required with no tools": ({"tools": [], "tool_choice": "required"},
                                           "tool_choice"),
    "n above one": ({"n": 2}, "n"),
    # No answer carries these through (the neutral answer has neither): served, the client
    # would get logprobs null or no audio, silently.
    "logprobs asked": ({"logprobs": True}, "logprobs"),
    "top_logprobs asked": ({"top_logprobs": 3}, "logprobs"),
    "audio output asked": ({"modalities": ["text", "audio"],
                            "audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
    "non-finite number in a tool's schema": (b'"tools": [{"type": "function", "function": '
                                             b'{"name": "f", "parameters": {"default": NaN}}}]',
                                             None),
    "legacy functions": ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
    "unknown role": ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0]"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_a_request_the_client_got_wrong_is_a_400_and_no_provider_is_called(
    served: tuple[Runner, str], fakes: Fakes, case: str
) -> None:
    runner, url = served
    change, param = BAD_REQUESTS[case]
    if isinstance(change, bytes):  # what json.dumps cannot write: spliced into the text
        raw = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], ' + change + b"}"
    else:
        raw = json.dumps({"model": "auto", "messages": MESSAGES, **change}).encode()
    async with httpx.AsyncClient() as http:
        refused = await http.post(f"{url}/v1/chat/completions", content=raw,
                                  headers={"content-type": "application/json"})  # fmt: skip
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert fakes.primary.stats.requests == 0 and fakes.fallback.stats.requests == 0
    assert all(s.misconfigured is None for s in runner.engine.manager.status().values())


async def test_models_lists_the_pool(served: tuple[Runner, str]) -> None:
    _, url = served
    models = await openai_client(url).models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [
        ("gpt-4o-mini", "primary"), ("gpt-4.1", "fallback"),
        ("primary", "primary"), ("fallback", "fallback"),
    ]  # fmt: skip


async def test_custom_state_is_saved_in_the_checkpoint_and_survives_a_restart(
    served: tuple[Runner, str], fakes: Fakes, edges: Edges
) -> None:
    _, url = served
    async with httpx.AsyncClient() as http:
        put = await http.put(f"{url}/v1/checkpoint/state", json={"state": {"step": 4}})
        assert put.json()["saved"] is True
        assert (await http.get(f"{url}/v1/checkpoint/state")).json()["state"] == {"step": 4}
        huge = await http.put(f"{url}/v1/checkpoint/state", json={"state": "x" * 600_000})
        assert huge.status_code == 413
    stored = await edges.store.read()
    assert stored.checkpoint.custom_state == {"step": 4}

    successor = edges.runner(config(fakes, tasks=None))
    await successor.start()
    assert successor.custom_state == {"step": 4}
    await successor.shutdown(5)


async def test_health_and_readiness(served: tuple[Runner, str]) -> None:
    runner, url = served
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/readyz")).status_code == 200
        runner.work_stop.set()
        assert (await http.get(f"{url}/readyz")).status_code == 503
        refused = await http.post(f"{url}/v1/chat/completions",
                                  json={"model": "x", "messages": MESSAGES})  # fmt: skip
        assert refused.status_code == 503
        assert (await http.get(f"{url}/healthz")).status_code == 200


async def test_a_client_leaving_mid_stream_settles_the_call_as_a_success(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"chunk_delay_ms": 50})
    body = {"model": "x", "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient() as http,
        http.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if '"content":"[fake' in line:
                break  # leave after the first words
    manager = runner.engine.manager

    async with asyncio.timeout(5):
        while manager.spend_by_provider.get("primary") is None:
            await asyncio.sleep(0.01)
    assert manager.spend_by_provider["primary"].calls == 1
    assert manager.status()["primary"].healthy
    assert manager.status()["primary"].success_rate == 1.0


async def test_unknown_routes_and_methods_are_refused_in_openais_error_shape(
    served: tuple[Runner, str],
) -> None:
    _, url = served
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{url}/v1/audio/speech", json={"input": "x"})
        wrong = await http.delete(f"{url}/v1/checkpoint/state")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, PUT"
    assert wrong.json()["error"]["code"] == "method_not_allowed"


async def test_a_body_over_the_limit_is_a_413_the_sdks_read_not_a_reset(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    """A client writes its whole body before it reads the answer; a server that answers 413
    and closes with the rest unread resets the connection, and the SDKs then see a
    connection error (and retry it, sending the 9 MiB again) instead of the 413."""
    _, url = served
    huge = [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]
    with pytest.raises(openai.APIStatusError) as refused:
        await openai_client(url).chat.completions.create(model="auto", messages=huge)
    assert refused.value.status_code == 413
    assert "limited to 8388608 bytes" in refused.value.message

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it comes
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(9 * 16):
            yield b"x" * 65536
        yield b'"}]}'

    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/v1/chat/completions", content=chunks())
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert fakes.primary.stats.requests == 0 and fakes.fallback.stats.requests == 0
