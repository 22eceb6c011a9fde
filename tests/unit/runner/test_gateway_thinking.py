"""Extended thinking through ``/v1/messages`` with Anthropic's SDK: thinking blocks reach the
client with their signatures, come back in the next turn of a tool loop and go, unchanged,
to the provider that made them, which verifies them (each fake signs with a key of its
own). After a fallback, no other provider gets them: another Anthropic provider answers the
turn without thinking (the API would refuse a tool turn whose thinking it cannot verify or
that lacks it), an OpenAI-compatible one never sees them.
And reasoning from OpenAI-compatible servers (``reasoning_content``) reaches OpenAI's SDK on
``/v1/chat/completions``, whole and streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from llmagents.runner.lifecycle import Runner
from llmagents.testing.fake_providers import FakeAnthropic, FakeOpenAI

from .conftest import Edges, runner_config, serving

KEY = "sk-thinking-0123456789"
THINKING = {"type": "enabled", "budget_tokens": 1024}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ASK = {"role": "user", "content": "What does get_weather say for Paris?"}


@dataclass
class Thinkers:
    runner: Runner
    origin: str
    first: FakeAnthropic
    second: FakeAnthropic
    gpt: FakeOpenAI

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.origin, api_key="k", max_retries=0)


@pytest.fixture
async def thinkers(edges: Edges) -> AsyncIterator[Thinkers]:
    async with (
        FakeAnthropic(api_key=KEY) as first,
        FakeAnthropic(api_key=KEY) as second,
        FakeOpenAI(api_key=KEY) as gpt,
    ):
        common = {"secretRef": {"name": "keys"}, "timeout": "5s", "maxRetries": 0,
                  "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}}  # fmt: skip
        providers = [
            {"name": "claude-a", "type": "anthropic", "model": "claude-sonnet-4-5",
             "priority": 1, "baseURL": first.base_url, **common},
            {"name": "claude-b", "type": "anthropic", "model": "claude-sonnet-4-5",
             "priority": 2, "baseURL": second.base_url, **common},
            {"name": "gpt", "type": "openai", "model": "gpt-4.1", "priority": 3,
             "baseURL": gpt.base_url, **common},
        ]  # fmt: skip
        config = runner_config(
            providers,
            pool={"models": {"claudes": ["claude-a", "claude-b"]},
                  "circuitBreaker": {"maxFailures": 1, "recoveryTime": "1ms"}},
        )  # fmt: skip
        runner = edges.runner(config, api_keys=dict.fromkeys(("claude-a", "claude-b", "gpt"), KEY))
        async with serving(runner) as origin:
            yield Thinkers(runner, origin, first, second, gpt)


async def _turn(
    client: anthropic.AsyncAnthropic,
    messages: list[Any],
    *,
    stream: bool,
    model: str = "auto",
    thinks: bool = True,
) -> tuple[anthropic.types.Message, str]:
    options: dict[str, Any] = {"model": model, "max_tokens": 2048, "thinking": THINKING,
                               "tools": [WEATHER], "messages": messages}  # fmt: skip
    if not stream:
        raw = await client.messages.with_raw_response.create(**options)
        return await raw.parse(), raw.headers["x-llmagents-provider"]
    async with client.messages.stream(**options) as events:
        kinds = [e.delta.type async for e in events if e.type == "content_block_delta"]
        message = await events.get_final_message()
    assert ("thinking_delta" in kinds and "signature_delta" in kinds) == thinks
    return message, events.response.headers["x-llmagents-provider"]


def _answer_with_results(first: anthropic.types.Message) -> list[dict[str, Any]]:
    uses = [b for b in first.content if b.type == "tool_use"]
    return [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id,
                                      "content": "Sunny in Paris"} for u in uses]},
    ]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_thinking_blocks_go_back_unchanged_to_the_provider_that_signed_them(
    thinkers: Thinkers, stream: bool
) -> None:
    client = thinkers.anthropic()
    first, provider = await _turn(client, [ASK], stream=stream)
    assert provider == "claude-a" and first.stop_reason == "tool_use"
    thinking = first.content[0]
    assert thinking.type == "thinking" and thinking.thinking.startswith("Let me think about")
    assert thinking.signature.startswith("llmagents~claude-a~")

    final, provider = await _turn(client, [ASK, *_answer_with_results(first)], stream=stream)

    # claude-a verified its own signature (a wrong one, or none, is a 400 at the fake).
    assert provider == "claude-a"
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[1].text.endswith("tool results: Sunny in Paris")
    assert thinkers.second.stats.requests == 0


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_after_a_fallback_another_anthropic_provider_answers_without_foreign_thinking(
    thinkers: Thinkers, stream: bool
) -> None:
    client = thinkers.anthropic()
    first, _ = await _turn(client, [ASK], stream=False)
    thinkers.first.core.update({"outage": True})

    final, provider = await _turn(client, [ASK, *_answer_with_results(first)], stream=stream,
                                  model="claudes", thinks=False)  # fmt: skip

    # claude-a's signature would not verify at claude-b, and claude-b would refuse a tool
    # turn without thinking while thinking is on: the gateway sent neither.
    assert provider == "claude-b"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text.endswith("tool results: Sunny in Paris")
    assert thinkers.second.stats.outcomes["ok"] == 1  # no refusal on the way
    assert all(s.misconfigured is None for s in thinkers.runner.engine.manager.status().values())


async def test_after_a_fallback_to_openai_the_thinking_is_left_out(thinkers: Thinkers) -> None:
    client = thinkers.anthropic()
    first, _ = await _turn(client, [ASK], stream=False)
    thinkers.first.core.update({"outage": True})
    thinkers.second.core.update({"outage": True})

    final, provider = await _turn(client, [ASK, *_answer_with_results(first)], stream=False)

    assert provider == "gpt"
    assert final.content[-1].text == "[fake-openai:gpt-4.1] tool results: Sunny in Paris"


async def test_a_signature_from_elsewhere_is_refused_by_anthropic_and_answered_by_openai(
    thinkers: Thinkers,
) -> None:
    """A thinking block the gateway did not hand out (no provider prefix) is sent as it came
    to Anthropic providers; both refuse it, which marks neither, and gpt answers."""
    client = thinkers.anthropic()
    first, _ = await _turn(client, [ASK], stream=False)
    history = _answer_with_results(first)
    history[0]["content"][0]["signature"] = "forged-signature"

    final, provider = await _turn(client, [ASK, *history], stream=False)

    assert provider == "gpt"
    assert thinkers.first.stats.outcomes["rejected_400"] == 1
    assert thinkers.second.stats.outcomes["rejected_400"] == 1
    assert all(s.misconfigured is None for s in thinkers.runner.engine.manager.status().values())
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_reasoning_content_of_an_openai_compatible_server_reaches_openais_sdk(
    thinkers: Thinkers, stream: bool
) -> None:
    client = openai.AsyncOpenAI(base_url=f"{thinkers.origin}/v1", api_key="k", max_retries=0)
    ask: Any = [{"role": "user", "content": "Why is the sky blue?"}]
    if stream:
        events = await client.chat.completions.create(model="gpt", messages=ask, stream=True,
                                                      reasoning_effort="low")  # fmt: skip
        reasoning, text = "", ""
        async for event in events:
            if event.choices:
                delta = event.choices[0].delta
                reasoning += getattr(delta, "reasoning_content", None) or ""
                text += delta.content or ""
    else:
        answer = await client.chat.completions.create(model="gpt", messages=ask,
                                                      reasoning_effort="low")  # fmt: skip
        message = answer.choices[0].message
        reasoning, text = getattr(message, "reasoning_content", ""), message.content or ""
    assert reasoning == "Let me think about: Why is the sky blue?"
    assert text.startswith("[fake-openai:gpt-4.1] answer to:")


async def test_a_thinking_block_without_a_signature_is_left_out_when_sent_back(
    thinkers: Thinkers,
) -> None:
    """An unsigned block (how the gateway shows another protocol's reasoning) verifies
    nowhere: it is left out, and the tool turn is answered without thinking."""
    client = thinkers.anthropic()
    first, _ = await _turn(client, [ASK], stream=False)
    history = _answer_with_results(first)
    history[0]["content"][0] = {"type": "thinking", "thinking": "shown", "signature": ""}

    final, provider = await _turn(client, [ASK, *history], stream=True, thinks=False)

    assert provider == "claude-a" and [b.type for b in final.content] == ["text"]
    assert thinkers.first.stats.outcomes["ok"] == 2
