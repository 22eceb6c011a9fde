"""Spend that cannot be dodged: broken streams are charged, absurd usage is refused, and the
budget is a hard cap measured against the fake providers' own token counters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from llmagents.chat import ChatRequest, Message, Role
from llmagents.errors import ProviderError
from llmagents.routing import CallTask
from llmagents.runner.tasks import LoopEnd

from .conftest import PRICES, Edges, Fakes, config

QUESTION = [Message(Role.USER, "Name three colours of the rainbow, please")]


async def test_a_stream_broken_mid_answer_is_charged_for_what_arrived(
    fakes: Fakes, edges: Edges
) -> None:
    runner = edges.runner(config(fakes, tasks=None))
    await runner.start()
    try:
        fakes.primary.core.update({"script": ["break"], "stream_break_after": 3})
        task = CallTask.from_messages(QUESTION)
        stream = await runner.engine.open_stream(ChatRequest(QUESTION), task)
        received = ""
        with pytest.raises(ProviderError):
            async for chunk in stream:
                received += chunk.text
        assert len(received.split()) == 3
        spend = runner.engine.manager.spend_by_provider["primary"]
        output = -(-len(received) // 4)
        assert (spend.input_tokens, spend.output_tokens) == (task.input_tokens, output)
        expected = (task.input_tokens * 1000 + output * 2000) / 1e6
        assert stream.cost == pytest.approx(expected) and spend.cost == pytest.approx(expected)
        assert runner.engine.manager.status()["primary"].success_rate == 0.0  # still a failure
    finally:
        await runner.shutdown(5)


@pytest.fixture
async def absurd_usage() -> AsyncIterator[str]:
    """An OpenAI-compatible server whose answers report an infinite prompt token count."""

    async def chat(request: web.Request) -> web.Response:
        body = {"id": "x", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": float("inf"), "completion_tokens": -3}}  # fmt: skip
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.add_routes([web.post("/v1/chat/completions", chat)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_infinite_or_negative_usage_is_malformed_and_the_fallback_answers(
    fakes: Fakes, edges: Edges, absurd_usage: str
) -> None:
    cfg = config(fakes, tasks=2, budget={"limit": 10})
    cfg.pool.providers[0].base_url = absurd_usage
    runner = edges.runner(cfg)
    await runner.start()
    try:
        assert await runner.run_tasks() is LoopEnd.FINISHED
    finally:
        await runner.shutdown(5)
    assert runner.progress.completed == ["task-0", "task-1"]
    spend = runner.engine.manager.spend_by_provider
    assert set(spend) == {"fallback"}  # the primary was never charged, least of all a refund
    assert spend["fallback"].cost == pytest.approx(
        (fakes.fallback.stats.input_tokens * PRICES["inputPerMillion"]
         + fakes.fallback.stats.output_tokens * PRICES["outputPerMillion"]) / 1e6
    )  # fmt: skip


@pytest.mark.parametrize("limit", [0.02, 0.05, 0.1, 0.23])
async def test_the_budget_is_a_hard_cap_measured_against_the_providers_counters(
    fakes: Fakes, edges: Edges, limit: float
) -> None:
    # Each task states it expects one output token; the fake answers about fifteen unless
    # the request's limit cuts it: $0.035 a call uncapped, which overspent every limit here.
    tasks = [{"name": f"task-{i}", "prompt": f"Question number {i}?",
              "estimatedOutputTokens": 1} for i in range(30)]  # fmt: skip
    runner = edges.runner(config(fakes, tasks=tasks, budget={"limit": limit}))
    await runner.start()
    try:
        assert await runner.run_tasks() is LoopEnd.BUDGET_SPENT
    finally:
        await runner.shutdown(5)
    stats = fakes.primary.stats
    charged = (stats.input_tokens * 1000 + stats.output_tokens * 2000) / 1e6
    budget = runner.engine.manager.budget
    assert budget is not None
    assert budget.spent == pytest.approx(charged)
    # The runner over-estimates these prompts' tokens (four per message of framing), so the
    # overshoot bound (the input estimate's error) is zero here: never a cent over.
    assert charged <= limit
    assert stats.requests >= 1
