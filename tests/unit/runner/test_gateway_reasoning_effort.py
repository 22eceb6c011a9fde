"""``reasoning_effort`` (chat completions) and ``reasoning.effort`` (Responses), from
OpenAI's SDK through the gateway, reach each provider in its own terms: Anthropic's
extended thinking with the effort's budget, Gemini's ``thinkingConfig``, an
OpenAI-compatible server's ``reasoning_effort``, OpenRouter's ``reasoning`` object. Each fake
records what it was asked and shows its reasoning, which comes back to the client."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from llmagents.chat import effort_for_budget
from llmagents.providers import OpenAIAdapter
from llmagents.testing.fake_providers import FakeOpenAI

from .conftest import Edges, Pod, runner_config, serving

ASK = "Why is the sky blue?"
THOUGHT = f"Let me think about: {ASK}"
ASKED = {
    "claude": {"thinking": {"type": "enabled", "budget_tokens": 8192}},
    "gemini": {"thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}},
    "gpt": {"reasoning_effort": "medium"},
}


def _fake(pod: Pod, provider: str) -> Any:
    return {"claude": pod.claude, "gemini": pod.gemini, "gpt": pod.gpt}[provider]


@pytest.mark.parametrize("provider", ["claude", "gemini", "gpt"])
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_reasoning_effort_reaches_each_provider_in_its_own_terms(
    pod: Pod, provider: str, stream: bool
) -> None:
    options: dict[str, Any] = {"model": provider, "reasoning_effort": "medium",
                               "max_completion_tokens": 20000,
                               "messages": [{"role": "user", "content": ASK}]}  # fmt: skip
    async with pod.client() as client:
        if stream:
            reasoning, text = "", ""
            async for chunk in await client.chat.completions.create(**options, stream=True):
                if chunk.choices:
                    reasoning += getattr(chunk.choices[0].delta, "reasoning_content", None) or ""
                    text += chunk.choices[0].delta.content or ""
        else:
            answer = await client.chat.completions.create(**options)
            message = answer.choices[0].message
            reasoning, text = getattr(message, "reasoning_content", ""), message.content or ""

    assert _fake(pod, provider).last_call.reasoning_asked == ASKED[provider]
    assert reasoning == THOUGHT
    assert "answer to: Why is the sky blue?" in text


@pytest.mark.parametrize("provider", ["claude", "gemini", "gpt"])
async def test_a_responses_reasoning_effort_reaches_each_provider_and_is_echoed(
    pod: Pod, provider: str
) -> None:
    async with pod.client() as client:
        response = await client.responses.create(
            model=provider, input=ASK, store=False, max_output_tokens=20000,
            reasoning={"effort": "medium", "summary": "auto"},
        )  # fmt: skip

    assert _fake(pod, provider).last_call.reasoning_asked == ASKED[provider]
    assert response.reasoning is not None
    assert (response.reasoning.effort, response.reasoning.summary) == ("medium", "auto")
    summaries = [s.text for o in response.output if o.type == "reasoning" for s in o.summary]
    assert summaries == [THOUGHT]


async def test_under_the_clients_output_limit_anthropics_budget_is_fitted(pod: Pod) -> None:
    async with pod.client() as client:
        await client.chat.completions.create(
            model="claude", reasoning_effort="high", max_completion_tokens=5000,
            messages=[{"role": "user", "content": ASK}],
        )  # fmt: skip

    asked = pod.claude.last_call.reasoning_asked  # type: ignore[union-attr]
    assert asked == {"thinking": {"type": "enabled", "budget_tokens": 4999}}


@pytest.mark.parametrize("route", ["chat", "responses"])
async def test_an_effort_no_provider_knows_is_a_400_naming_it(pod: Pod, route: str) -> None:
    async with pod.client() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            if route == "chat":
                await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": ASK}],
                    reasoning_effort="extreme",  # type: ignore[arg-type]
                )  # fmt: skip
            else:
                await client.responses.create(model="auto", input=ASK, store=False,
                                              reasoning={"effort": "extreme"})  # type: ignore[typeddict-item]  # fmt: skip

    assert "reasoning" in (refused.value.param or "")
    assert "'high'" in refused.value.message
    assert (pod.claude.stats.requests, pod.gpt.stats.requests, pod.gemini.stats.requests) == (
        0, 0, 0,
    )  # fmt: skip


async def test_openrouter_gets_the_effort_in_its_reasoning_object(edges: Edges) -> None:
    async with FakeOpenAI(api_key="sk-or-0123456789", openrouter_reasoning="anthropic") as router:
        config = runner_config([{"name": "openrouter", "type": "openai",
                                 "model": "anthropic/claude-sonnet-4.5", "baseURL": router.base_url,
                                 "secretRef": {"name": "keys"}, "timeout": "5s", "maxRetries": 0}],
                               )  # fmt: skip
        router.models = ("anthropic/claude-sonnet-4.5",)
        runner = edges.runner(config, api_keys={"openrouter": "sk-or-0123456789"})
        adapter = runner.engine.adapters["openrouter"]
        assert isinstance(adapter, OpenAIAdapter) and not adapter.openrouter
        adapter.openrouter = True  # the fake listens on loopback, not on openrouter.ai
        async with (
            serving(runner) as origin,
            openai.AsyncOpenAI(base_url=f"{origin}/v1", api_key="k", max_retries=0) as client,
        ):
            answer = await client.chat.completions.create(
                model="auto", reasoning_effort="low", messages=[{"role": "user", "content": ASK}],
                extra_body={"reasoning": {"exclude": False}},
            )  # fmt: skip

    assert router.last_call is not None
    assert router.last_call.reasoning_asked == {"reasoning": {"exclude": False, "effort": "low"}}
    assert getattr(answer.choices[0].message, "reasoning_content", None) == THOUGHT


@pytest.mark.parametrize(
    ("provider", "asked"),
    [
        ("claude", {"thinking": {"type": "enabled", "budget_tokens": 5000}}),
        ("gemini", {"thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}}),
        ("gpt", {"reasoning_effort": "medium"}),
    ],
)
async def test_a_messages_thinking_budget_reaches_other_protocols_as_the_effort_holding_it(
    pod: Pod, provider: str, asked: dict[str, Any]
) -> None:
    """Anthropic gets the client's ``thinking`` as it is; the others the least effort whose
    budget holds it (5000 tokens: ``medium``, 8192)."""
    origin = pod.url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(base_url=origin, api_key="k", max_retries=0) as client:
        message = await client.messages.create(
            model=provider, max_tokens=20000, messages=[{"role": "user", "content": ASK}],
            thinking={"type": "enabled", "budget_tokens": 5000},
        )  # fmt: skip

    assert _fake(pod, provider).last_call.reasoning_asked == asked
    assert message.content[0].type == "thinking" and message.content[0].thinking == THOUGHT


def test_a_thinking_budget_is_the_least_effort_holding_it() -> None:
    assert [effort_for_budget(n) for n in (1, 1024, 1025, 2048, 5000, 16384, 20000, 99999)] == [
        "minimal", "minimal", "low", "low", "medium", "high", "xhigh", "xhigh",
    ]  # fmt: skip
