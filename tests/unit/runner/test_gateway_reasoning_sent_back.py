"""Reasoning sent back in a tool loop, on every front door: an earlier assistant turn's signed
or encrypted reasoning goes back to the provider that made it, as that provider requires
(Anthropic: its signed thinking blocks before the ``tool_use`` of the continued turn while
thinking is on; OpenRouter: its ``reasoning_details`` as it gave them), and is dropped when a
fallback moves the conversation to another provider, which never errs because of it.

The fakes check what the real APIs check: the fake Anthropic verifies its own signatures and
refuses a thinking tool turn without them, the fake OpenRouter (serving Claude) takes back only
the blocks it gave and refuses a tool turn without them, and the fake OpenAI refuses
``reasoning_details`` in a message, as OpenAI refuses fields it does not know."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from llmagents.runner.lifecycle import Runner
from llmagents.testing.fake_providers import FakeAnthropic, FakeGemini, FakeOpenAI
from llmagents.testing.fake_providers.openai import OPENROUTER_SIGNATURE

from .conftest import Edges, runner_config, serving

KEY = "sk-sent-back-0123456789"
ASK: dict[str, Any] = {"role": "user", "content": "What does get_weather say for Paris?"}
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}  # fmt: skip
CHAT_TOOL = {"type": "function", "function": WEATHER}
RESPONSES_TOOL = {"type": "function", **WEATHER}


@dataclass
class Pool:
    runner: Runner
    origin: str
    claude: FakeAnthropic
    router: FakeOpenAI
    gpt: FakeOpenAI
    gemini: FakeGemini

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.origin}/v1", api_key="k", max_retries=0)

    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.origin, api_key="k", max_retries=0)


@pytest.fixture
async def pool(edges: Edges) -> AsyncIterator[Pool]:
    async with (
        FakeAnthropic(api_key=KEY) as claude,
        FakeOpenAI(api_key=KEY, openrouter_reasoning="anthropic",
                   models=["anthropic/claude-sonnet-4.5"]) as router,
        FakeOpenAI(api_key=KEY) as gpt,
        FakeGemini(api_key=KEY) as gemini,
    ):  # fmt: skip
        common = {"secretRef": {"name": "keys"}, "timeout": "5s", "maxRetries": 0,
                  "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}}  # fmt: skip
        providers = [
            {"name": "claude", "type": "anthropic", "model": "claude-sonnet-4-5", "priority": 1,
             "baseURL": claude.base_url, **common},
            {"name": "router", "type": "openai", "model": "anthropic/claude-sonnet-4.5",
             "priority": 2, "baseURL": router.base_url, **common},
            {"name": "gpt", "type": "openai", "model": "gpt-4.1", "priority": 3,
             "baseURL": gpt.base_url, **common},
            {"name": "gemini", "type": "gemini", "model": "gemini-2.5-flash", "priority": 4,
             "baseURL": gemini.base_url, **common},
        ]  # fmt: skip
        config = runner_config(
            providers,
            pool={"models": {"claude-gpt": ["claude", "gpt"], "claude-gemini": ["claude", "gemini"],
                             "router-claude": ["router", "claude"]},
                  "circuitBreaker": {"maxFailures": 1, "recoveryTime": "1ms"}},
        )  # fmt: skip
        names = ("claude", "router", "gpt", "gemini")
        runner = edges.runner(config, api_keys=dict.fromkeys(names, KEY))
        async with serving(runner) as origin:
            yield Pool(runner, origin, claude, router, gpt, gemini)


def _result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "Sunny in Paris"}


async def _chat(client: openai.AsyncOpenAI, model: str, messages: list[Any]) -> Any:
    return (await _raw_chat(client, model, messages)).parse()


async def _raw_chat(client: openai.AsyncOpenAI, model: str, messages: list[Any]) -> Any:
    return await client.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=[CHAT_TOOL], reasoning_effort="low",  # type: ignore[list-item]
        max_completion_tokens=8000,
    )  # fmt: skip


def _continued(message: Any) -> list[Any]:
    """The conversation after ``message`` (the SDK's object, as it came) and its call's result."""
    return [ASK, message, _result(message.tool_calls[0].id)]


async def test_openais_sdk_sends_anthropics_signed_thinking_back_in_a_tool_loop(
    pool: Pool,
) -> None:
    async with pool.openai() as client:
        first = await _chat(client, "claude", [ASK])
        message = first.choices[0].message
        [detail] = message.model_extra["reasoning_details"]
        assert detail["signature"].startswith("llmagents~claude~") and message.tool_calls

        # The SDK's own message object goes back as it came, reasoning_details included.
        final = await _chat(client, "claude", _continued(message))

    assert pool.claude.last_call is not None
    assert pool.claude.last_call.reasoning_returned == 1  # verified by the fake's signature
    assert pool.claude.last_call.reasoning_asked is not None  # thinking stayed on
    assert final.choices[0].message.content.endswith("tool results: Sunny in Paris")
    assert pool.claude.stats.outcomes == {"ok": 2}


async def test_a_streamed_answers_reasoning_details_go_back_as_the_client_kept_them(
    pool: Pool,
) -> None:
    """The deltas' details, kept one by one (pieces of a block, then its signature), are
    joined again: the signature covers the whole text."""
    async with pool.openai() as client:
        details: list[Any] = []
        calls: dict[int, dict[str, Any]] = {}
        stream = await client.chat.completions.create(
            model="claude", messages=[ASK], tools=[CHAT_TOOL], reasoning_effort="low",  # type: ignore[list-item]
            max_completion_tokens=8000, stream=True,
        )  # fmt: skip
        async for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            details += (delta.model_extra or {}).get("reasoning_details") or []
            for piece in delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"id": piece.id, "type": "function",
                                                      "function": {"name": "", "arguments": ""}})  # fmt: skip
                call["function"]["name"] += piece.function.name or ""  # type: ignore[union-attr]
                call["function"]["arguments"] += piece.function.arguments or ""  # type: ignore[union-attr]
        assert len(details) > 1 and details[-1]["signature"].startswith("llmagents~claude~")
        turn = {"role": "assistant", "content": None, "tool_calls": list(calls.values()),
                "reasoning_details": details}  # fmt: skip

        await _chat(client, "claude", [ASK, turn, _result(calls[0]["id"])])

    assert pool.claude.last_call is not None and pool.claude.last_call.reasoning_returned == 1
    assert pool.claude.stats.outcomes == {"ok": 2}


@pytest.mark.parametrize(("alias", "other"), [("claude-gpt", "gpt"), ("claude-gemini", "gemini")])
async def test_after_a_fallback_anthropics_thinking_is_dropped_without_an_error(
    pool: Pool, alias: str, other: str
) -> None:
    async with pool.openai() as client:
        first = await _chat(client, "claude", [ASK])
        message = first.choices[0].message
        pool.claude.core.update({"outage": True})

        raw = await _raw_chat(client, alias, _continued(message))

    fake = getattr(pool, other)
    assert raw.headers["x-llmagents-provider"] == other
    assert fake.stats.outcomes == {"ok": 1}  # no refusal of foreign reasoning on the way
    assert fake.last_call.reasoning_returned == 0
    text = raw.parse().choices[0].message.content
    assert "tool results: " in text and "Sunny in Paris" in text


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_a_responses_reasoning_items_encrypted_content_goes_back_to_its_provider(
    pool: Pool, stream: bool
) -> None:
    options: dict[str, Any] = {"model": "claude", "tools": [RESPONSES_TOOL], "store": False,
                               "reasoning": {"effort": "low"}, "max_output_tokens": 8000,
                               "include": ["reasoning.encrypted_content"]}  # fmt: skip
    async with pool.openai() as client:
        if stream:
            events = await client.responses.create(input=[ASK], stream=True, **options)
            [first] = [e.response async for e in events if e.type == "response.completed"]
        else:
            first = await client.responses.create(input=[ASK], **options)
        reasoning = [o for o in first.output if o.type == "reasoning"]
        [call] = [o for o in first.output if o.type == "function_call"]
        assert reasoning[0].encrypted_content.startswith("llmagents~claude~")  # type: ignore[union-attr]

        history = [ASK, *[o.model_dump(exclude_none=True) for o in first.output],
                   {"type": "function_call_output", "call_id": call.call_id,
                    "output": "Sunny in Paris"}]  # fmt: skip
        final = await client.responses.create(input=history, **options)

    assert pool.claude.last_call is not None
    assert pool.claude.last_call.reasoning_returned == 1
    assert pool.claude.last_call.reasoning_asked is not None
    assert final.output_text.endswith("tool results: Sunny in Paris")


async def test_without_encrypted_content_the_continued_tool_turn_goes_without_thinking(
    pool: Pool,
) -> None:
    """OpenAI's API hands out encrypted reasoning only when ``include`` asks for it; without
    it, Anthropic would refuse the tool turn with thinking on, so that turn thinks not."""
    options: dict[str, Any] = {"model": "claude", "tools": [RESPONSES_TOOL], "store": False,
                               "reasoning": {"effort": "low"}, "max_output_tokens": 8000}  # fmt: skip
    async with pool.openai() as client:
        first = await client.responses.create(input=[ASK], **options)
        assert all(o.encrypted_content is None for o in first.output if o.type == "reasoning")
        [call] = [o for o in first.output if o.type == "function_call"]
        history = [ASK, *[o.model_dump(exclude_none=True) for o in first.output],
                   {"type": "function_call_output", "call_id": call.call_id,
                    "output": "Sunny in Paris"}]  # fmt: skip
        await client.responses.create(input=history, **options)

    assert pool.claude.last_call is not None
    assert (pool.claude.last_call.reasoning_returned, pool.claude.last_call.reasoning_asked) == (
        0, None,
    )  # fmt: skip
    assert pool.claude.stats.outcomes == {"ok": 2}


async def test_openrouters_reasoning_details_go_back_to_it_as_it_gave_them(pool: Pool) -> None:
    async with pool.openai() as client:
        first = await _chat(client, "router", [ASK])
        message = first.choices[0].message
        [detail] = message.model_extra["reasoning_details"]
        assert detail["signature"] == f"llmagents~router~{OPENROUTER_SIGNATURE}"

        await _chat(client, "router", _continued(message))

        # Without them, the fake (as OpenRouter serving Claude) refuses the tool turn.
        bare = {"role": "assistant", "content": None,
                "tool_calls": [c.model_dump() for c in message.tool_calls]}  # fmt: skip
        with pytest.raises(openai.BadRequestError):
            await _chat(client, "router", [ASK, bare, _result(message.tool_calls[0].id)])

    assert pool.router.stats.outcomes == {"ok": 2, "rejected_400": 1}


async def test_anthropics_sdk_sends_openrouters_thinking_back_with_its_format(pool: Pool) -> None:
    """A thinking block the Messages front door showed goes back to OpenRouter as the
    ``reasoning_details`` block it was, ``format`` included (the adapter remembered it)."""
    tool = {"name": "get_weather", "input_schema": WEATHER["parameters"]}
    async with pool.anthropic() as client:
        first = await client.messages.create(model="router", max_tokens=2048, tools=[tool],  # type: ignore[list-item]
                                             messages=[ASK])  # fmt: skip
        [use] = [b for b in first.content if b.type == "tool_use"]
        history = [ASK, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                 "content": "Sunny in Paris"}]}]  # fmt: skip
        await client.messages.create(model="router", max_tokens=2048, tools=[tool],  # type: ignore[list-item]
                                     messages=history)  # fmt: skip

    assert pool.router.last_call is not None and pool.router.last_call.reasoning_returned == 1
    assert pool.router.stats.outcomes == {"ok": 2}


async def test_after_a_fallback_from_openrouter_anthropic_gets_none_of_its_reasoning(
    pool: Pool,
) -> None:
    async with pool.openai() as client:
        first = await _chat(client, "router", [ASK])
        message = first.choices[0].message
        pool.router.core.update({"outage": True})

        raw = await _raw_chat(client, "router-claude", _continued(message))

    assert raw.headers["x-llmagents-provider"] == "claude"
    assert pool.claude.last_call is not None
    # OpenRouter's signature would not verify at Anthropic: left out, and the tool turn is
    # answered without thinking rather than refused.
    assert (pool.claude.last_call.reasoning_returned, pool.claude.last_call.reasoning_asked) == (
        0, None,
    )  # fmt: skip
    assert pool.claude.stats.outcomes == {"ok": 1}
