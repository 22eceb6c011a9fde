from __future__ import annotations

from collections import Counter

import pytest

from llmagents.api.pool import Strategy
from llmagents.api.work import Complexity, TaskSpec
from llmagents.chat import Message, Role
from llmagents.errors import AllProvidersFailed, ServerError
from llmagents.routing import CallTask

from .helpers import FakeClock, Scripted, manager, pool, provider

MEDIUM = Complexity.MEDIUM


def priced(name: str, inp: float, out: float, **fields: object) -> dict[str, object]:
    return provider(name, pricing={"inputPerMillion": inp, "outputPerMillion": out}, **fields)


async def test_priority_orders_by_priority_then_pool_order(clock: FakeClock) -> None:
    spec = pool(provider("z", priority=5), provider("y", priority=1), provider("x", priority=5))
    engine = manager(spec, clock)
    assert engine.plan(CallTask(complexity=MEDIUM)) == ["y", "z", "x"]


async def test_cost_optimized_orders_by_expected_cost_of_the_task(clock: FakeClock) -> None:
    spec = pool(
        priced("cheap-in", 0.1, 10.0),  # reading is cheap, writing dear
        priced("cheap-out", 5.0, 1.0),
        priced("middle", 2.0, 4.0),
        strategy="cost-optimized",
    )
    engine = manager(spec, clock)
    reading = CallTask(input_tokens=100_000, output_tokens=100, complexity=MEDIUM)
    writing = CallTask(input_tokens=100, output_tokens=100_000, complexity=MEDIUM)
    # reading: 0.011, 0.5001, 0.2004 USD; writing: 1.00001, 0.1005, 0.4002 USD
    assert engine.plan(reading) == ["cheap-in", "middle", "cheap-out"]
    assert engine.plan(writing) == ["cheap-out", "middle", "cheap-in"]


async def test_cost_optimized_breaks_ties_by_priority(clock: FakeClock) -> None:
    spec = pool(
        priced("b", 1, 1, priority=2),
        priced("a", 1, 1, priority=1),
        provider("local", type="onnx", priority=9),
        strategy="cost-optimized",
    )
    engine = manager(spec, clock)
    assert engine.plan(CallTask(complexity=MEDIUM)) == ["local", "a", "b"]


async def test_performance_optimized_prefers_fast_reliable_providers(clock: FakeClock) -> None:
    spec = pool(
        provider("slow", priority=1),
        provider("flaky", priority=2),
        provider("fast", priority=3),
        provider("new", priority=4),
        strategy="performance-optimized",
    )
    engine = manager(spec, clock)
    task = CallTask(complexity=MEDIUM, providers=frozenset({"slow", "flaky", "fast"}))
    # Teach the engine: slow answers in 3 s, flaky fails half the time in 0.5 s, fast in 0.5 s.
    for _ in range(4):
        await engine.execute(
            CallTask(complexity=MEDIUM, providers=frozenset({"slow"})),
            Scripted(clock, latency=3.0),
        )
        await engine.execute(
            CallTask(complexity=MEDIUM, providers=frozenset({"flaky", "fast"})),
            Scripted(clock, {"flaky": [ServerError("x")]}, latency=0.5),
        )
    assert engine.plan(task) == ["fast", "flaky", "slow"]
    # A provider never tried scores best, so that the engine learns about it.
    assert engine.plan(CallTask(complexity=MEDIUM))[0] == "new"


async def test_round_robin_spreads_calls_evenly_over_healthy_providers(clock: FakeClock) -> None:
    spec = pool(
        provider("a"),
        provider("b"),
        provider("c"),
        strategy="round-robin",
        circuitBreaker={"maxFailures": 1, "recoveryTime": "1h", "maxRecoveryTime": "1h"},
    )
    engine = manager(spec, clock)
    task = CallTask(complexity=MEDIUM)
    served = Counter()
    for _ in range(9):
        served[(await engine.execute(task, Scripted(clock))).provider] += 1
    assert served == {"a": 3, "b": 3, "c": 3}

    with pytest.raises(AllProvidersFailed):  # opens b's breaker
        await engine.execute(
            CallTask(complexity=MEDIUM, providers=frozenset({"b"})),
            Scripted(clock, {"b": [ServerError("x")]}),
        )
    served.clear()
    for _ in range(8):
        served[(await engine.execute(task, Scripted(clock))).provider] += 1
    assert served == {"a": 4, "c": 4}


async def test_simple_tasks_prefer_the_fast_tier_and_complex_the_quality_tier(
    clock: FakeClock,
) -> None:
    spec = pool(
        provider("big", tier="quality", priority=1),
        provider("mid", tier="balanced", priority=2),
        provider("small", tier="fast", priority=3),
        provider("small2", tier="fast", priority=4),
    )
    engine = manager(spec, clock)
    assert engine.plan(CallTask(complexity=Complexity.SIMPLE)) == ["small", "small2", "mid", "big"]
    assert engine.plan(CallTask(complexity=Complexity.COMPLEX)) == ["big", "mid", "small", "small2"]
    assert engine.plan(CallTask(complexity=MEDIUM)) == ["big", "mid", "small", "small2"]


async def test_tier_preference_keeps_the_strategy_order_within_a_tier(clock: FakeClock) -> None:
    spec = pool(
        priced("fast-dear", 5, 5, tier="fast"),
        priced("fast-cheap", 1, 1, tier="fast"),
        priced("quality-cheapest", 0.5, 0.5, tier="quality"),
        strategy="cost-optimized",
    )
    engine = manager(spec, clock)
    assert engine.plan(CallTask(complexity=Complexity.SIMPLE)) == [
        "fast-cheap",
        "fast-dear",
        "quality-cheapest",
    ]


def test_complexity_is_derived_from_the_prompt_size_when_not_given() -> None:
    short = CallTask.from_messages([Message(Role.USER, "What is 2 + 2?")])
    middle = CallTask.from_messages([Message(Role.USER, "x" * 4000)])
    long = CallTask.from_messages(
        [Message(Role.SYSTEM, "Be thorough."), Message(Role.USER, "x" * 20_000)]
    )
    assert (short.complexity, middle.complexity, long.complexity) == (
        Complexity.SIMPLE,
        Complexity.MEDIUM,
        Complexity.COMPLEX,
    )
    assert long.input_tokens == 3 + 4 + 5000 + 4  # ~4 characters a token, 4 per message
    stated = CallTask.from_messages([Message(Role.USER, "hi")], complexity=Complexity.COMPLEX)
    assert stated.complexity is Complexity.COMPLEX


def test_output_estimate_prefers_the_stated_estimate_then_the_maximum() -> None:
    messages = [Message(Role.USER, "hi")]
    assert CallTask.from_messages(messages, max_output_tokens=300).output_tokens == 300
    assert (
        CallTask.from_messages(
            messages, max_output_tokens=300, estimated_output_tokens=40
        ).output_tokens
        == 40
    )
    assert CallTask.from_messages(messages).output_tokens == 512


async def test_free_only_and_provider_filters_restrict_the_candidates(clock: FakeClock) -> None:
    spec = pool(
        priced("paid", 1, 2, priority=1),
        provider("local", type="onnx", priority=2),
        priced("other", 1, 2, priority=3),
    )
    engine = manager(spec, clock)
    assert engine.plan(CallTask(complexity=MEDIUM, free_only=True)) == ["local"]
    assert engine.plan(CallTask(complexity=MEDIUM, providers=frozenset({"other", "paid"}))) == [
        "paid",
        "other",
    ]


def test_a_task_spec_uses_its_stated_estimates_or_counts_its_text() -> None:
    stated = TaskSpec(
        name="summarise",
        prompt="x" * 40,
        estimated_input_tokens=5000,
        estimated_output_tokens=300,
        max_output_tokens=900,
    )
    counted = TaskSpec(name="greet", system="Be kind.", prompt="Say hello to the team.")
    task = CallTask.from_spec(stated, deadline=30)
    assert (task.input_tokens, task.output_tokens, task.complexity, task.name) == (
        5000,
        300,
        Complexity.COMPLEX,
        "summarise",
    )
    assert task.deadline == 30
    # "Be kind." is 2 tokens, the prompt 6, plus 4 per message
    assert CallTask.from_spec(counted).input_tokens == 2 + 4 + 6 + 4


async def test_an_agent_may_override_the_pool_strategy(clock: FakeClock) -> None:
    spec = pool(priced("dear", 9, 9, priority=1), priced("cheap", 1, 1, priority=2))
    assert manager(spec, clock).plan(CallTask(complexity=MEDIUM)) == ["dear", "cheap"]
    engine = manager(spec, clock, strategy=Strategy.COST_OPTIMIZED)
    assert engine.plan(CallTask(complexity=MEDIUM)) == ["cheap", "dear"]
