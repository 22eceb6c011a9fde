"""Under random pools, fault schedules and call mixes, nothing is lost or counted twice.

Each example builds a random pool (strategy, prices, retries, breaker and budget settings),
then makes a sequence of calls whose attempts meet a random schedule of answers, errors,
slow answers and streams. Streams are settled later, some by usage, some by a mid-stream
failure, so that probe slots stay held across calls. The checks: every call ends in a result
or a typed error; every attempt the caller saw is in exactly one result or error; every
charged token and dollar is accounted exactly once per provider and in total; no attempt
reaches a provider whose breaker should have refused it; and each breaker's history is a
valid walk of the state machine that ends in its current state.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.work import BudgetSpec, Complexity
from llmagents.chat import Usage
from llmagents.errors import (
    ERROR_TYPES,
    BudgetExhausted,
    CallFailed,
    ConnectionFailed,
    ErrorKind,
    ProviderTimeout,
)
from llmagents.routing import Attempt, BreakerState, CallResult, CallTask, ProviderManager
from llmagents.routing.costs import spec_price, usage_cost

from .helpers import FakeClock, provider

EDGES = {
    (BreakerState.CLOSED, BreakerState.OPEN),
    (BreakerState.OPEN, BreakerState.HALF_OPEN),
    (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    (BreakerState.HALF_OPEN, BreakerState.OPEN),
}


@dataclass
class Answer:
    usage: Usage | None


@st.composite
def pools(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    providers = []
    for index in range(count):
        free = draw(st.booleans())
        prices = (
            {}
            if free
            else {
                "inputPerMillion": draw(st.floats(0.05, 20)),
                "outputPerMillion": draw(st.floats(0.05, 60)),
            }
        )
        providers.append(
            provider(
                f"p{index}",
                type="onnx" if free and draw(st.booleans()) else "openai",
                priority=draw(st.integers(0, 5)),
                tier=draw(st.sampled_from(["fast", "balanced", "quality"])),
                pricing=prices,
                maxRetries=draw(st.integers(0, 3)),
                timeout=f"{draw(st.integers(1, 30))}s",
            )
        )
    recovery = draw(st.integers(1, 60))
    breaker: dict[str, Any] = {
        "maxFailures": draw(st.integers(1, 5)),
        "recoveryTime": f"{recovery}s",
        "recoveryMultiplier": draw(st.floats(1, 3)),
        "maxRecoveryTime": f"{recovery + draw(st.integers(0, 300))}s",
        "halfOpenProbes": draw(st.integers(1, 3)),
    }
    if draw(st.booleans()):
        breaker["failureRate"] = {
            "window": f"{draw(st.integers(1, 120))}s",
            "threshold": draw(st.floats(0.1, 1.0)),
            "minCalls": draw(st.integers(1, 10)),
        }
    return {
        "providers": providers,
        "strategy": draw(
            st.sampled_from(["priority", "cost-optimized", "performance-optimized", "round-robin"])
        ),
        "circuitBreaker": breaker,
        "retry": {
            "backoff": draw(st.sampled_from(["exponential", "linear"])),
            "initialDelay": f"{draw(st.integers(1, 3000))}ms",
            "maxDelay": f"{draw(st.integers(3, 30))}s",
            "jitter": draw(st.floats(0, 1)),
            "perErrorKind": draw(
                st.none() | st.fixed_dictionaries({"rateLimited": st.integers(0, 4)})
            ),
        },
        "callDeadline": f"{draw(st.integers(2, 200))}s",
    }


budgets = st.none() | st.fixed_dictionaries(
    {
        "limit": st.floats(0.0001, 0.05),
        "period": st.sampled_from(["total", "daily", "monthly"]),
        "onExhausted": st.sampled_from(["stop", "local-only"]),
    }
)

outcomes = st.one_of(
    st.tuples(
        st.just("ok"),
        st.integers(0, 5000),
        st.integers(0, 2000),
        st.floats(0.001, 40),
        st.sampled_from(["plain", "plain", "stream-ok", "stream-broken"]),
    ),
    st.tuples(
        st.just("error"),
        st.sampled_from(list(ErrorKind)),
        st.none() | st.floats(0, 40),
        st.floats(0.001, 40),
        st.just(""),
    ),
)

calls = st.lists(
    st.tuples(
        st.integers(0, 6000),  # estimated input tokens
        st.integers(0, 2000),  # estimated output tokens
        st.none() | st.sampled_from(list(Complexity)),
        st.booleans(),  # free only
        st.floats(0, 400),  # time before the call
        st.integers(0, 3),  # calls to wait before settling a stream
    ),
    min_size=1,
    max_size=14,
)


class Schedule:
    """The caller's function: checks what the engine admitted, then plays the next outcome."""

    def __init__(self, clock: FakeClock, engine: ProviderManager, script: list[Any]) -> None:
        self.clock = clock
        self.engine = engine
        self.script = list(script)
        self.seen: list[Attempt] = []
        self.streams: dict[int, tuple[str, Usage]] = {}  # id(answer) -> its end, its usage

    async def __call__(self, attempt: Attempt) -> Answer:
        breaker = self.engine._states[attempt.provider.name].breaker
        if attempt.probe:
            assert breaker.state is BreakerState.HALF_OPEN
            assert 1 <= breaker.probes_in_flight <= breaker.max_probes
        else:
            assert breaker.state is BreakerState.CLOSED
        assert 0 < attempt.timeout <= attempt.provider.timeout.total_seconds()
        self.seen.append(attempt)
        outcome = self.script.pop(0) if self.script else ("ok", 10, 10, 0.1, "plain")
        latency = outcome[3]
        if latency > attempt.timeout:
            self.clock.advance(attempt.timeout)
            raise ProviderTimeout("no answer in time")
        self.clock.advance(latency)
        await asyncio.sleep(0)
        if outcome[0] == "error":
            raise ERROR_TYPES[outcome[1]]("scripted", retry_after=outcome[2])
        usage = Usage(outcome[1], outcome[2])
        if outcome[4] == "plain":
            return Answer(usage)
        answer = Answer(None)
        self.streams[id(answer)] = (outcome[4], usage)
        return answer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pool_data=pools(),
    budget_data=budgets,
    script=st.lists(outcomes, max_size=40),
    plan=calls,
    seed=st.integers(0, 2**16),
)
def test_no_call_is_lost_or_counted_twice_and_breakers_stay_valid(
    pool_data: dict[str, Any],
    budget_data: dict[str, Any] | None,
    script: list[Any],
    plan: list[Any],
    seed: int,
) -> None:
    asyncio.run(_scenario(pool_data, budget_data, script, plan, seed))


async def _scenario(
    pool_data: dict[str, Any],
    budget_data: dict[str, Any] | None,
    script: list[Any],
    plan: list[Any],
    seed: int,
) -> None:
    spec = ProviderPoolSpec.model_validate(pool_data)
    clock = FakeClock()
    budget = BudgetSpec.model_validate(budget_data) if budget_data else None
    engine = ProviderManager(
        spec,
        budget=budget,
        clock=clock.monotonic,
        wall_clock=clock.wall,
        sleep=clock.sleep,
        rng=random.Random(seed),
    )
    schedule = Schedule(clock, engine, script)
    deadline = spec.call_deadline.total_seconds()
    recorded = 0
    charged: dict[str, list[Usage]] = {}
    pending: list[tuple[int, CallResult[Answer]]] = []

    def charge(result: CallResult[Answer], usage: Usage) -> None:
        charged.setdefault(result.provider, []).append(usage)

    for index, (tokens_in, tokens_out, complexity, free_only, gap, settle_after) in enumerate(plan):
        clock.advance(gap)
        for due, result in [p for p in pending if p[0] <= index]:
            pending.remove((due, result))
            end, usage = schedule.streams[id(result.value)]
            if end == "stream-ok":
                engine.record_usage(result, usage)
            else:
                engine.record_stream_failure(result, ConnectionFailed("broke"), usage=usage)
            charge(result, usage)
        task = CallTask(tokens_in, tokens_out, complexity, free_only=free_only)
        began = clock.now
        try:
            result = await engine.execute(task, schedule)
        except BudgetExhausted:
            assert budget is not None
        except CallFailed as error:
            recorded += len(error.attempts)
            assert clock.now - began <= deadline + 1e-6
        else:
            recorded += len(result.attempts)
            assert result.latency <= deadline + 1e-6
            assert [a.number for a in result.attempts] == list(range(1, len(result.attempts) + 1))
            assert result.attempts[-1].error is None
            if result.settled:
                assert result.usage is not None
                charge(result, result.usage)
            else:
                pending.append((index + 1 + settle_after, result))
    for _, result in pending:
        _, usage = schedule.streams[id(result.value)]
        engine.record_usage(result, usage)
        charge(result, usage)

    # Every attempt the caller saw is reported exactly once.
    assert recorded == len(schedule.seen)

    # Every charged token is counted once, per provider and in total.
    for name, spend in engine.spend_by_provider.items():
        usages = charged.get(name, [])
        assert spend.calls == len(usages)
        assert spend.input_tokens == sum(u.input_tokens for u in usages)
        assert spend.output_tokens == sum(u.output_tokens for u in usages)
        expected = sum(usage_cost(u, spec_price(spec.provider(name))) for u in usages)
        assert abs(spend.cost - expected) <= 1e-12 + 1e-9 * expected
    assert set(charged) <= set(engine.spend_by_provider)
    assert engine.spend.calls == sum(len(u) for u in charged.values())
    assert abs(engine.spend.cost - sum(s.cost for s in engine.spend_by_provider.values())) <= 1e-12

    # Breakers: settled probes give their slots back; histories are valid walks.
    for name, state in engine._states.items():
        breaker = state.breaker
        assert breaker.probes_in_flight == 0, name
        current = BreakerState.CLOSED
        for transition in breaker.transitions:
            assert transition.from_state is current
            assert (transition.from_state, transition.to_state) in EDGES
            current = transition.to_state
        assert current is breaker.state
        if breaker.state is BreakerState.CLOSED:
            assert breaker.consecutive_failures < spec.circuit_breaker.max_failures
            assert breaker.openings == 0
        if breaker.state is BreakerState.OPEN:
            recovery = spec.circuit_breaker.recovery_time.total_seconds()
            cap = spec.circuit_breaker.max_recovery_time.total_seconds()
            assert recovery <= breaker.open_duration(breaker.openings) <= cap
            assert breaker.open_until <= clock.now + cap
