"""A request's reasoning effort in each protocol's own terms: Anthropic's extended thinking
with the effort's ``budget_tokens`` (fitted under ``max_tokens``), Gemini's
``thinkingConfig`` (a budget on 2.5, a level on 3), ``reasoning_effort`` to OpenAI-compatible
servers and OpenRouter's ``reasoning`` object to OpenRouter. Each payload is also sent to the
fake of its protocol, which refuses what the real API refuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmagents.chat import (
    ChatRequest,
    Message,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
)
from llmagents.providers import AnthropicAdapter, GeminiAdapter, OpenAIAdapter
from llmagents.testing.fake_providers import FakeAnthropic, FakeGemini, FakeOpenAI

KEY = "sk-effort-0123456789"
ASK = [Message(Role.USER, "Why is the sky blue?")]


def _request(effort: ReasoningEffort | None, **fields: Any) -> ChatRequest:
    return ChatRequest(list(ASK), reasoning_effort=effort, **fields)


def _claude(base_url: str = "http://127.0.0.1:1") -> AnthropicAdapter:
    return AnthropicAdapter(name="claude", model="claude-sonnet-4-5", base_url=base_url,
                            api_key=KEY)  # fmt: skip


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384), ("xhigh", 32768)],
)
def test_an_effort_is_anthropic_thinking_with_its_budget_and_room_for_the_answer(
    effort: str, budget: int
) -> None:
    payload = _claude()._payload(_request(ReasoningEffort(effort)), stream=False)

    assert payload["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert payload["max_tokens"] == budget + 4096


def test_an_effort_above_the_clients_max_tokens_is_fitted_under_it_or_left_off() -> None:
    fitted = _claude()._payload(_request(ReasoningEffort.HIGH, max_tokens=3000), stream=False)
    assert (fitted["max_tokens"], fitted["thinking"]["budget_tokens"]) == (3000, 2999)
    small = _claude()._payload(_request(ReasoningEffort.HIGH, max_tokens=1024), stream=False)
    assert "thinking" not in small and small["max_tokens"] == 1024


def test_anthropic_thinks_not_for_effort_none_nor_beside_a_forced_tool() -> None:
    assert "thinking" not in _claude()._payload(_request(ReasoningEffort.NONE), stream=False)
    json_mode = _request(ReasoningEffort.LOW, response_format=ResponseFormat(
        ResponseFormatType.JSON_SCHEMA, schema={"type": "object"}))  # fmt: skip
    payload = _claude()._payload(json_mode, stream=False)
    assert payload["tool_choice"]["type"] == "tool" and "thinking" not in payload


def test_anthropic_thinking_leaves_out_sampling_settings_the_api_refuses_beside_it() -> None:
    payload = _claude()._payload(_request(ReasoningEffort.LOW, temperature=0.2, top_p=0.5),
                                 stream=False)  # fmt: skip
    assert "temperature" not in payload and "top_p" not in payload
    kept = _claude()._payload(_request(ReasoningEffort.LOW, temperature=1.0, top_p=0.97),
                              stream=False)  # fmt: skip
    assert (kept["temperature"], kept["top_p"]) == (1.0, 0.97)


def test_a_messages_clients_own_thinking_wins_over_an_effort() -> None:
    own = {"type": "enabled", "budget_tokens": 1500}
    request = _request(
        ReasoningEffort.HIGH, max_tokens=2000, passthrough={"anthropic": {"thinking": own}}
    )
    assert _claude()._payload(request, stream=False)["thinking"] == own


@pytest.mark.parametrize(
    ("model", "effort", "config"),
    [
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("gemini-2.5-flash", "xhigh", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0, "includeThoughts": False}),
        ("gemini-2.5-pro", "xhigh", {"thinkingBudget": 32768, "includeThoughts": True}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128, "includeThoughts": False}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "low", "includeThoughts": True}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-2.0-flash", "high", None),
    ],
)
async def test_an_effort_is_geminis_thinking_config_which_the_fake_takes(
    model: str, effort: str, config: dict[str, Any] | None
) -> None:
    async with FakeGemini(api_key=KEY) as fake:
        adapter = GeminiAdapter(name="gemini", model=model, base_url=fake.base_url, api_key=KEY)
        request = _request(ReasoningEffort(effort), max_tokens=100)
        assert (
            adapter._payload(request, stream=False)["generationConfig"].get("thinkingConfig")
            == config
        )
        async with adapter:
            answer = await adapter.complete(request, timeout=5)

    assert fake.last_call is not None
    assert fake.last_call.reasoning_asked == (
        None if config is None else {"thinkingConfig": config}
    )
    shown = config is not None and config["includeThoughts"]
    assert answer.reasoning_text == ("Let me think about: Why is the sky blue?" if shown else "")
    assert (answer.usage.reasoning_tokens > 0) == shown


@pytest.mark.parametrize(
    ("model", "config"),
    [
        ("gemini-2.5-flash", {"thinkingBudget": 1024, "thinkingLevel": "low"}),
        ("gemini-2.5-flash", {"thinkingLevel": "low"}),
        ("gemini-2.5-flash", {"thinkingBudget": 30000}),
        ("gemini-2.5-pro", {"thinkingBudget": 0}),
        ("gemini-2.0-flash", {"thinkingBudget": 1024}),
    ],
)
async def test_the_fake_gemini_refuses_a_thinking_config_the_api_refuses(
    model: str, config: dict[str, Any]
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"thinkingConfig": config}}  # fmt: skip
    async with FakeGemini(api_key=KEY) as fake, httpx.AsyncClient() as http:
        refused = await http.post(f"{fake.base_url}/v1beta/models/{model}:generateContent",
                                  json=body, headers={"x-goog-api-key": KEY})  # fmt: skip

    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "fields",
    [{"temperature": 0.5}, {"top_p": 0.9}, {"tool_choice": {"type": "any"}}],
)
async def test_the_fake_anthropic_refuses_beside_thinking_what_the_api_refuses(
    fields: dict[str, Any],
) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 2048, "tools": tools,
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}, **fields}  # fmt: skip
    async with FakeAnthropic(api_key=KEY) as fake, httpx.AsyncClient() as http:
        refused = await http.post(f"{fake.base_url}/v1/messages", json=body,
                                  headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})  # fmt: skip

    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["type"] == "invalid_request_error"


async def test_an_effort_goes_to_openai_compatible_servers_as_reasoning_effort() -> None:
    async with FakeOpenAI(api_key=KEY) as fake:
        adapter = OpenAIAdapter(name="gpt", model="gpt-4.1", base_url=fake.base_url, api_key=KEY)
        async with adapter:
            answer = await adapter.complete(_request(ReasoningEffort.NONE), timeout=5)
            assert answer.reasoning == ()
            answer = await adapter.complete(_request(ReasoningEffort.HIGH), timeout=5)

    assert fake.last_call is not None
    assert fake.last_call.reasoning_asked == {"reasoning_effort": "high"}
    assert answer.reasoning_text == "Let me think about: Why is the sky blue?"


def test_openrouter_gets_the_effort_in_its_reasoning_object() -> None:
    adapter = OpenAIAdapter(name="router", model="anthropic/claude-sonnet-4.5",
                            base_url="https://openrouter.ai/api/v1", api_key=KEY)  # fmt: skip
    own = {"max_tokens": 3000, "exclude": False}
    request = _request(ReasoningEffort.LOW, passthrough={"openai": {"reasoning": own}})

    payload = adapter._payload(request, stream=False)

    assert adapter.openrouter and "reasoning_effort" not in payload
    assert payload["reasoning"] == {"exclude": False, "effort": "low"}  # effort or max_tokens
    assert own == {"max_tokens": 3000, "exclude": False}
    other = OpenAIAdapter(name="vllm", model="m", base_url="https://vllm.example/v1", api_key=KEY)
    assert other._payload(request, stream=False)["reasoning_effort"] == "low"


async def test_anthropic_thinking_from_an_effort_is_taken_by_the_fake() -> None:
    async with FakeAnthropic(api_key=KEY) as fake:
        async with _claude(fake.base_url) as adapter:
            answer = await adapter.complete(_request(ReasoningEffort.LOW, temperature=0.3),
                                            timeout=5)  # fmt: skip

    assert fake.last_call is not None
    assert fake.last_call.reasoning_asked == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert answer.reasoning[0].signature == fake.sign(answer.reasoning[0].text)
