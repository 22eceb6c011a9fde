"""OpenRouter's reasoning through the gateway: ``reasoning_details`` (blocks with their
``index``; a Claude block's ``signature``, an OpenAI model's encrypted block) are read into
the chat model's reasoning, whole and streamed, and reach each front door's clients as that
protocol shows reasoning. The fake plays OpenRouter serving a model that always reasons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anthropic
import openai
import pytest

from llmagents.chat import Reasoning
from llmagents.providers import OpenAIAdapter
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
