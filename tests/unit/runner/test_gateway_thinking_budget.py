"""Extended thinking under a budget: the engine lowers a call's ``max_tokens`` so that its
worst case fits what is left (every output token at the higher of the output and reasoning
prices, while the call is admitted on its estimate at the output price), and Anthropic refuses ``thinking.budget_tokens`` that is not
below ``max_tokens`` (or below 1024), as the fake does. The adapter fits the thinking budget
under the lowered limit, or leaves thinking off that call when 1024 no longer fits.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import pytest

from llmagents.chat import ChatRequest, Message, Role
from llmagents.providers import AnthropicAdapter
from llmagents.testing.fake_providers import FakeAnthropic

from .conftest import Edges, runner_config, serving

KEY = "sk-thinking-0123456789"
ASK = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=KEY) as fake:
        yield fake


@asynccontextmanager
async def _serve(claude: FakeAnthropic, edges: Edges, limit: float) -> AsyncIterator[str]:
    # The request's 4096 output tokens are estimated at $0.001 each ($4.10 in all), but the
    # worst case is thinking at $0.004 a token: a budget of $L lets through L/0.004 tokens.
    config = runner_config(
        [{"name": "claude", "type": "anthropic", "model": "claude-sonnet-4-5",
          "baseURL": claude.base_url, "secretRef": {"name": "keys"}, "timeout": "5s",
          "maxRetries": 0, "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 1000.0,
                                       "reasoningPerMillion": 4000.0}}],
        budget={"limit": limit},
    )  # fmt: skip
    async with serving(edges.runner(config, api_keys={"claude": KEY})) as origin:
        yield origin


async def _ask(origin: str, *, stream: bool) -> anthropic.types.Message:
    options: dict[str, Any] = {"model": "auto", "max_tokens": 4096, "messages": ASK,
                               "thinking": {"type": "enabled", "budget_tokens": 2048}}  # fmt: skip
    async with anthropic.AsyncAnthropic(base_url=origin, api_key="k", max_retries=0) as client:
        if not stream:
            return await client.messages.create(**options)
        async with client.messages.stream(**options) as events:
            return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_a_thinking_budget_above_the_capped_output_limit_is_lowered_below_it(
    claude: FakeAnthropic, edges: Edges, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmagents.providers.anthropic")
    async with _serve(claude, edges, limit=6.0) as origin:
        # max_tokens 4096 becomes 1499, budget_tokens 2048 1498.
        answer = await _ask(origin, stream=stream)

    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert claude.stats.outcomes == {"ok": 1}  # the fake checks budget_tokens < max_tokens
    [line] = [r.getMessage() for r in caplog.records if "budget_tokens" in r.getMessage()]
    assert line.startswith("agent agent-a: provider claude: thinking.budget_tokens 2048 lowered")


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_thinking_is_left_off_a_call_whose_capped_output_limit_cannot_hold_1024(
    claude: FakeAnthropic, edges: Edges, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llmagents.providers.anthropic")
    async with _serve(claude, edges, limit=4.1) as origin:  # max_tokens 1024
        answer = await _ask(origin, stream=stream)

    assert [b.type for b in answer.content] == ["text"]
    assert claude.stats.outcomes == {"ok": 1}
    [line] = [r.getMessage() for r in caplog.records if "thinking left off" in r.getMessage()]
    assert line.startswith("agent agent-a: provider claude: thinking left off")


async def test_the_fake_refuses_a_thinking_budget_the_real_api_refuses(
    claude: FakeAnthropic,
) -> None:
    client = anthropic.AsyncAnthropic(base_url=claude.base_url, api_key=KEY, max_retries=0)
    for budget, max_tokens in ((2048, 2048), (1000, 4096)):
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(
                model="claude-sonnet-4-5", max_tokens=max_tokens, messages=ASK,
                thinking={"type": "enabled", "budget_tokens": budget},
            )  # fmt: skip
        assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert "budget_tokens" in refused.value.message
    await client.messages.create(model="claude-sonnet-4-5", max_tokens=2049, messages=ASK,
                                 thinking={"type": "enabled", "budget_tokens": 2048})  # fmt: skip


def test_fitting_the_thinking_budget_leaves_the_callers_passthrough_unchanged() -> None:
    adapter = AnthropicAdapter(name="claude", model="claude-sonnet-4-5",
                               base_url="http://127.0.0.1:1", api_key=KEY)  # fmt: skip
    thinking = {"type": "enabled", "budget_tokens": 2048}
    request = ChatRequest([Message(Role.USER, "hi")], max_tokens=1500,
                          passthrough={"anthropic": {"thinking": thinking}})  # fmt: skip

    assert adapter._payload(request, stream=False)["thinking"] == {
        "type": "enabled", "budget_tokens": 1499,
    }  # fmt: skip
    low = ChatRequest([Message(Role.USER, "hi")], max_tokens=1024,
                      passthrough={"anthropic": {"thinking": thinking}})  # fmt: skip
    assert "thinking" not in adapter._payload(low, stream=True)
    assert thinking == {"type": "enabled", "budget_tokens": 2048}
    assert request.passthrough == {"anthropic": {"thinking": thinking}}


async def test_the_front_door_refuses_a_thinking_budget_not_below_max_tokens(
    claude: FakeAnthropic, edges: Edges
) -> None:
    async with (
        _serve(claude, edges, limit=100.0) as origin,
        anthropic.AsyncAnthropic(base_url=origin, api_key="k", max_retries=0) as client,
    ):
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(model="auto", max_tokens=2048, messages=ASK,
                                         thinking={"type": "enabled", "budget_tokens": 2048})  # fmt: skip

    assert "`max_tokens` must be greater than `thinking.budget_tokens`" in refused.value.message
    assert claude.stats.requests == 0
