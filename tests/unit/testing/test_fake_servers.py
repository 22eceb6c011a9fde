"""The fake servers as a client sees them on the wire, their admin API, thread runner and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import pytest

from llmagents.testing.fake_providers import (
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    FaultPlan,
)
from llmagents.testing.fake_providers.cli import add_arguments, build_plan, main

REPO = Path(__file__).resolve().parents[3]
CLAUDE = {
    "model": "claude-haiku-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hello there"}],
}
GPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


async def test_anthropic_fake_requires_the_version_header() -> None:
    async with FakeAnthropic(api_key="k") as fake, httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake.base_url}/v1/messages", json=CLAUDE, headers={"x-api-key": "k"}
        )

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
async def test_anthropic_fake_takes_the_key_as_x_api_key_or_a_bearer_token(header: str) -> None:
    value = "k" if header == "x-api-key" else "Bearer k"
    async with FakeAnthropic(api_key="k") as fake, httpx.AsyncClient() as client:
        sent = {header: value, "anthropic-version": "2023-06-01"}
        right = await client.post(f"{fake.base_url}/v1/messages", json=CLAUDE, headers=sent)
        wrong = await client.post(f"{fake.base_url}/v1/messages", json=CLAUDE,
                                  headers=sent | {header: value.replace("k", "other")})  # fmt: skip
        none = await client.post(f"{fake.base_url}/v1/messages", json=CLAUDE,
                                 headers={"anthropic-version": "2023-06-01"})  # fmt: skip

    assert right.status_code == 200, right.text
    assert (wrong.status_code, none.status_code) == (401, 401)
    assert wrong.json()["error"]["type"] == "authentication_error"


async def test_anthropics_sdk_reaches_the_fake_with_an_auth_token() -> None:
    async with (
        FakeAnthropic(api_key="sk-ant-oat-0123456789") as fake,
        anthropic.AsyncAnthropic(base_url=fake.base_url, auth_token="sk-ant-oat-0123456789",
                                 api_key=None, max_retries=0) as client,
    ):  # fmt: skip
        message = await client.messages.create(**CLAUDE)  # type: ignore[call-overload]
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(**CLAUDE, extra_headers={"authorization": "Bearer no"})  # type: ignore[call-overload]

    assert message.content[0].text.startswith("[fake-anthropic:claude-haiku-4-5] answer to")


async def test_anthropic_fake_streams_the_documented_event_sequence() -> None:
    async with FakeAnthropic(api_key=None) as fake, httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake.base_url}/v1/messages",
            json=CLAUDE | {"stream": True},
            headers={"anthropic-version": "2023-06-01"},
        )

    names = [
        line.removeprefix("event: ")
        for line in response.text.splitlines()
        if line.startswith("event: ")
    ]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_gemini_fake_takes_the_key_as_a_query_parameter_too() -> None:
    async with FakeGemini(api_key="k") as fake, httpx.AsyncClient() as client:
        url = f"{fake.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
        with_query = await client.post(url, params={"key": "k"}, json=GEMINI)
        without = await client.post(url, json=GEMINI)

    assert with_query.status_code == 200
    assert with_query.json()["candidates"][0]["finishReason"] == "STOP"
    assert without.status_code == 403
    assert without.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_gemini_fake_marks_a_wrong_key_as_api_key_invalid() -> None:
    async with FakeGemini(api_key="k") as fake, httpx.AsyncClient() as client:
        response = await client.post(
            f"{fake.base_url}/v1beta/models/gemini-2.5-flash:generateContent",
            json=GEMINI,
            headers={"x-goog-api-key": "nope"},
        )

    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


async def test_openai_fake_sends_usage_only_when_asked() -> None:
    async with FakeOpenAI(api_key=None) as fake, httpx.AsyncClient() as client:
        url = f"{fake.base_url}/chat/completions"
        plain = await client.post(url, json=GPT | {"stream": True})
        with_usage = await client.post(
            url, json=GPT | {"stream": True, "stream_options": {"include_usage": True}}
        )

    def chunks(text: str) -> list[object]:
        data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        return [json.loads(d) for d in data[:-1]]

    assert all("usage" not in c for c in chunks(plain.text))
    last = chunks(with_usage.text)[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0


async def test_openai_fake_calls_a_tool_after_results_only_when_tool_choice_requires_one() -> None:
    """As the real API: no ``tool_choice`` is ``auto`` (an answer), ``required`` makes the
    model call again, here the tool the prompt does not name (an agent library's own)."""
    tools = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
             for name in ("get_weather", "final_result")]  # fmt: skip
    history = GPT | {
        "tools": tools,
        "messages": [
            {"role": "user", "content": "What does get_weather say for Paris?"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
    }  # fmt: skip
    async with FakeOpenAI(api_key=None) as fake, httpx.AsyncClient() as client:
        url = f"{fake.base_url}/chat/completions"
        auto = (await client.post(url, json=history)).json()["choices"][0]
        required = (await client.post(url, json=history | {"tool_choice": "required"})).json()

    assert auto["finish_reason"] == "stop" and auto["message"]["content"].endswith("Sunny")
    (call,) = required["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "final_result"


async def test_latency_delays_every_answer() -> None:
    fake = FakeOpenAI(api_key=None, faults=FaultPlan(latency="60"))
    async with fake, httpx.AsyncClient() as client:
        started = time.monotonic()
        await client.post(f"{fake.base_url}/chat/completions", json=GPT)
        elapsed = time.monotonic() - started

    assert elapsed >= 0.06


async def test_admin_endpoints_switch_an_outage_and_report_counters() -> None:
    async with FakeOpenAI(api_key=None) as fake, httpx.AsyncClient() as client:
        chat = f"{fake.base_url}/chat/completions"
        assert (await client.post(chat, json=GPT)).status_code == 200
        changed = await client.post(f"{fake.url}/_fake/faults", json={"outage": True})
        during = await client.post(chat, json=GPT)
        await client.post(f"{fake.url}/_fake/faults", json={"outage": False})
        after = await client.post(chat, json=GPT)
        stats = (await client.get(f"{fake.url}/_fake/stats")).json()
        await client.post(f"{fake.url}/_fake/reset")
        reset = (await client.get(f"{fake.url}/_fake/stats")).json()

    assert changed.json()["outage"] is True
    assert (during.status_code, after.status_code) == (503, 200)
    assert stats["requests"] == 3 and stats["outcomes"] == {"ok": 2, "outage": 1}
    assert stats["output_tokens"] > 0 and stats["protocol"] == "openai"
    assert reset["requests"] == 0


async def test_admin_put_replaces_the_plan_and_rejects_nonsense() -> None:
    fake = FakeOpenAI(faults=FaultPlan(fail_rate=0.5))
    async with fake, httpx.AsyncClient() as client:
        replaced = await client.put(f"{fake.url}/_fake/faults", json={"script": ["429:1"]})
        refused = await client.post(f"{fake.url}/_fake/faults", json={"fail_rate": 2})

    assert replaced.json()["fail_rate"] == 0 and replaced.json()["script"][0]["status"] == 429
    assert refused.status_code == 400 and "fail_rate" in refused.json()["error"]
    assert fake.faults.fail_rate == 0


def test_a_fake_in_a_thread_serves_synchronous_callers() -> None:
    with FakeAnthropic(api_key="k").start_in_thread() as running:
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        ok = httpx.post(f"{running.base_url}/v1/messages", json=CLAUDE, headers=headers)
        running.update_faults(script=["529"])
        overloaded = httpx.post(f"{running.base_url}/v1/messages", json=CLAUDE, headers=headers)
        stats = running.stats()

    assert ok.status_code == 200 and ok.json()["stop_reason"] == "end_turn"
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert stats["outcomes"] == {"ok": 1, "529": 1}


def parse(*argv: str) -> object:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_become_a_fault_plan() -> None:
    args = parse(
        "--protocol",
        "gemini",
        "--fail-rate",
        "0.3",
        "--status",
        "429:2,500,reset",
        "--latency-ms",
        "50:200",
        "--outage",
        "30:60",
        "--outage",
        "90:",
        "--seed",
        "1",
    )

    plan = build_plan(args)  # type: ignore[arg-type]

    assert plan.fail_rate == 0.3 and [f.label for f in plan.fail_with] == ["429", "500", "reset"]
    assert plan.latency is not None and plan.latency.max_ms == 200
    assert [(w.start_s, w.end_s) for w in plan.outage_windows] == [(30, 60), (90, None)]


def test_cli_refuses_a_non_loopback_host_and_bad_faults() -> None:
    assert main(parse("--protocol", "openai", "--host", "0.0.0.0")) == 2  # type: ignore[arg-type]
    assert main(parse("--protocol", "openai", "--status", "teapot")) == 2  # type: ignore[arg-type]


def test_cli_runs_a_fake_until_its_duration_ends() -> None:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmagents.cli",
            "fake-provider",
            "--protocol",
            "openai",
            "--port",
            "0",
            "--api-key",
            "k",
            "--script",
            "429:1",
            "--duration",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.rsplit(" ", 1)[-1].strip()
        headers = {"authorization": "Bearer k"}
        first = httpx.post(f"{base_url}/chat/completions", json=GPT, headers=headers)
        second = httpx.post(f"{base_url}/chat/completions", json=GPT, headers=headers)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert line.startswith("fake openai provider ready at http://127.0.0.1:")
    assert (first.status_code, first.headers["retry-after"]) == (429, "1")
    assert second.status_code == 200
    assert process.returncode == 0
