"""OpenRouter's reasoning through the gateway: ``reasoning_details`` (blocks with their
``index``; a Claude block's ``signature``, an OpenAI model's encrypted block) are read into
the chat model's reasoning, whole and streamed, and reach each front door's clients as that
protocol shows reasoning. The fake plays OpenRouter serving a model that always reasons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anthropic
import openai
import pytest

from llmagents.chat import ChatRequest, Message, Reasoning, Role
from llmagents.providers import OpenAIAdapter
from llmagents.providers.sse import SseEvent
from llmagents.testing.fake_providers import FakeOpenAI
from llmagents.testing.fake_providers.openai import OPENROUTER_ENCRYPTED, OPENROUTER_SIGNATURE

from .conftest import Edges, runner_config, serving

KEY = "sk-or-0123456789"
ASK = "Why is the sky blue?"
THOUGHT = f"Let me think about: {ASK}"


@asynccontextmanager
async def _gateway(edges: Edges, style: Literal["openai", "anthropic"]) -> AsyncIterator[str]:
    async with FakeOpenAI(api_key=KEY, openrouter_reasoning=style) as router:
        config = runner_config([{"name": "openrouter", "type": "openai", "model": "gpt-4.1",
                                 "baseURL": router.base_url, "secretRef": {"name": "keys"},
                                 "timeout": "5s", "maxRetries": 0}])  # fmt: skip
        async with serving(edges.runner(config, api_keys={"openrouter": KEY})) as origin:
            yield origin


async def _messages(origin: str, *, stream: bool) -> anthropic.types.Message:
    options: dict[str, Any] = {"model": "auto", "max_tokens": 1024,
                               "messages": [{"role": "user", "content": ASK}]}  # fmt: skip
    async with anthropic.AsyncAnthropic(base_url=origin, api_key="k", max_retries=0) as client:
        if not stream:
            return await client.messages.create(**options)
        async with client.messages.stream(**options) as events:
            return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_an_encrypted_block_reaches_anthropics_sdk_as_redacted_thinking(
    edges: Edges, stream: bool
) -> None:
    async with _gateway(edges, "openai") as origin:
        answer = await _messages(origin, stream=stream)

    blocks = [b.model_dump() for b in answer.content]
    assert blocks[:2] == [
        {"type": "thinking", "thinking": THOUGHT, "signature": ""},
        {"type": "redacted_thinking", "data": f"llmagents~openrouter~{OPENROUTER_ENCRYPTED}"},
    ]
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "text"]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_a_claude_blocks_signature_reaches_anthropics_sdk_tagged_with_its_provider(
    edges: Edges, stream: bool
) -> None:
    async with _gateway(edges, "anthropic") as origin:
        answer = await _messages(origin, stream=stream)

    thinking = answer.content[0]
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert thinking.signature == f"llmagents~openrouter~{OPENROUTER_SIGNATURE}"
    assert [b.type for b in answer.content] == ["thinking", "text"]


@pytest.mark.parametrize("style", ["openai", "anthropic"])
async def test_openais_sdk_gets_the_reasoning_once_on_chat_completions_and_responses(
    edges: Edges, style: Literal["openai", "anthropic"]
) -> None:
    """``reasoning`` repeats the details' text: read once, whole and streamed."""
    ask: Any = [{"role": "user", "content": ASK}]
    async with (
        _gateway(edges, style) as origin,
        openai.AsyncOpenAI(base_url=f"{origin}/v1", api_key="k", max_retries=0) as client,
    ):
        whole = await client.chat.completions.create(model="auto", messages=ask)
        streamed = ""
        async for chunk in await client.chat.completions.create(
            model="auto", messages=ask, stream=True
        ):
            if chunk.choices:
                streamed += getattr(chunk.choices[0].delta, "reasoning_content", None) or ""
        response = await client.responses.create(model="auto", input=ASK, store=False)

    assert getattr(whole.choices[0].message, "reasoning_content", None) == THOUGHT
    assert streamed == THOUGHT
    summaries = [s.text for o in response.output if o.type == "reasoning" for s in o.summary]
    assert summaries == [THOUGHT]


def test_details_of_other_types_are_skipped_and_blocks_stay_apart() -> None:
    """The shapes OpenRouter documents, one answer holding each kind of block."""
    adapter = OpenAIAdapter(name="openrouter", model="m", base_url="http://127.0.0.1:1/v1",
                            api_key=KEY)  # fmt: skip
    details = [
        {"type": "reasoning.text", "text": "first", "signature": "sig", "index": 0,
         "format": "anthropic-claude-v1"},
        {"type": "reasoning.summary", "summary": "second", "index": 1},
        {"type": "reasoning.encrypted", "data": "opaque", "index": 2},
        {"type": "reasoning.server_tool_call", "index": 3},
        "not a detail",
    ]  # fmt: skip
    data = {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            "choices": [{"message": {"role": "assistant", "content": "hi",
                                     "reasoning": "firstsecond",
                                     "reasoning_details": details}}]}  # fmt: skip

    assert adapter._parse_answer(data).reasoning == (
        Reasoning("first", signature="sig", provider="openrouter"),
        Reasoning("second", provider="openrouter"),
        Reasoning(redacted="opaque", provider="openrouter"),
    )


def test_a_blocks_format_and_id_go_back_with_it_whole_and_streamed() -> None:
    """OpenRouter wants its blocks back as it gave them; the client's copy (the gateway's
    tagged signature or data) has neither ``format`` nor ``id`` (Gemini's encrypted blocks
    carry the tool call's), so the adapter remembers them by signature and data."""
    adapter = OpenAIAdapter(name="openrouter", model="m", base_url="http://127.0.0.1:1/v1",
                            api_key=KEY)  # fmt: skip
    details = [
        {"type": "reasoning.text", "text": "plan", "signature": "sig-1", "index": 0,
         "format": "anthropic-claude-v1"},
        {"type": "reasoning.encrypted", "data": "opaque-1", "id": "tool_0", "index": 1,
         "format": "google-gemini-v1"},
    ]  # fmt: skip
    data = {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            "choices": [{"message": {"role": "assistant", "content": "hi",
                                     "reasoning_details": details}}]}  # fmt: skip
    whole = adapter._parse_answer(data).reasoning
    stream = adapter._stream_decoder()
    pieces = [  # a block's format and id come with its first piece, not with its signature
        [{"type": "reasoning.text", "text": "pl", "index": 0, "format": "anthropic-claude-v1"}],
        [{"type": "reasoning.text", "text": "an", "index": 0}],
        [{"type": "reasoning.text", "text": "", "signature": "sig-2", "index": 0}],
        [{"type": "reasoning.encrypted", "data": "opaque-2", "id": "tool_1", "index": 1,
          "format": "google-gemini-v1"}],
    ]  # fmt: skip
    ends = []
    for delta in pieces:
        event = {"choices": [{"index": 0, "delta": {"reasoning_details": delta}}]}
        chunk = stream.feed(SseEvent("", json.dumps(event)))
        if chunk is not None and chunk.reasoning_end is not None:
            ends.append(chunk.reasoning_end)
    streamed = (Reasoning("plan", signature="sig-2", provider="openrouter"), ends[1])

    cases = ((whole, "sig-1", "opaque-1", "tool_0"), (streamed, "sig-2", "opaque-2", "tool_1"))
    for reasoning, sig, data_, call_id in cases:
        history = [Message(Role.USER, "q"), Message(Role.ASSISTANT, "hi", reasoning=reasoning),
                   Message(Role.USER, "more")]  # fmt: skip
        sent = adapter._payload(ChatRequest(history), stream=False)["messages"][1]
        assert sent["reasoning_details"] == [
            {"type": "reasoning.text", "text": "plan", "signature": sig,
             "format": "anthropic-claude-v1", "index": 0},
            {"type": "reasoning.encrypted", "data": data_, "format": "google-gemini-v1",
             "id": call_id, "index": 1},
        ]  # fmt: skip
