from __future__ import annotations

import pytest

from llmagents.chat import Usage
from llmagents.errors import ConnectionFailed, ServerError
from llmagents.routing import BreakerState, CallTask

from .helpers import FakeClock, Recorder, Reply, Scripted, manager, pool, provider

PRICES = {"inputPerMillion": 2.0, "outputPerMillion": 8.0}


def streaming_pool(**fields: object):
    return pool(
        provider("a", priority=1, pricing=PRICES),
        provider("b", priority=2, pricing=PRICES),
        **fields,
    )


async def test_a_stream_returns_unsettled_and_is_charged_once_when_usage_arrives(
    clock: FakeClock,
) -> None:
    recorder = Recorder()
    engine = manager(streaming_pool(), clock, budget={"limit": 1.0}, listener=recorder)
    result = await engine.execute(CallTask(), Scripted(clock, {"a": [Reply(usage=None)]}))
    assert (result.usage, result.cost, result.settled) == (None, 0.0, False)
    assert engine.spend.calls == 0

    cost = engine.record_usage(result, Usage(1000, 500))
    assert cost == (1000 * 2.0 + 500 * 8.0) / 1e6
    assert (result.usage, result.cost, result.settled) == (Usage(1000, 500), cost, True)
    assert engine.spend_by_provider["a"].cost == cost
    assert engine.budget is not None and engine.budget.spent == cost
    assert recorder.costs == [("a", Usage(1000, 500), cost)]

    with pytest.raises(ValueError, match="already settled"):
        engine.record_usage(result, Usage(1000, 500))
    assert engine.spend.calls == 1
    assert engine.spend.cost == cost


async def test_a_settled_call_cannot_be_charged_again(clock: FakeClock) -> None:
    engine = manager(streaming_pool(), clock)
    result = await engine.execute(CallTask(), Scripted(clock))
    assert result.settled
    with pytest.raises(ValueError):
        engine.record_usage(result, Usage(1, 1))
    assert engine.spend.calls == 1


async def test_mid_stream_failures_count_against_the_breaker(clock: FakeClock) -> None:
    engine = manager(streaming_pool(circuitBreaker={"maxFailures": 2}), clock)
    for _ in range(2):
        result = await engine.execute(CallTask(), Scripted(clock, {"a": [Reply(usage=None)]}))
        cost = engine.record_stream_failure(
            result, ConnectionFailed("stream broke off"), usage=Usage(100, 10)
        )
        assert cost == (100 * 2.0 + 10 * 8.0) / 1e6
    status = engine.status()["a"]
    assert status.breaker is BreakerState.OPEN
    assert status.success_rate == 0.0  # a first byte is not yet a success
    assert engine.spend.calls == 2  # the partial usage was charged
    follow = await engine.execute(CallTask(), Scripted(clock))
    assert follow.provider == "b"


async def test_a_streaming_probe_holds_its_slot_until_the_stream_ends(clock: FakeClock) -> None:
    engine = manager(streaming_pool(circuitBreaker={"maxFailures": 1, "recoveryTime": "5s"}), clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    clock.advance(5)
    probe = await engine.execute(CallTask(), Scripted(clock, {"a": [Reply(usage=None)]}))
    assert probe.provider == "a" and probe.attempts[-1].probe
    assert engine.status()["a"].breaker is BreakerState.HALF_OPEN
    assert (await engine.execute(CallTask(), Scripted(clock))).provider == "b"
    engine.record_usage(probe, Usage(10, 10))
    assert engine.status()["a"].breaker is BreakerState.CLOSED
    with pytest.raises(ValueError):
        engine.record_stream_failure(probe, ConnectionFailed("late"))


async def test_fallback_happens_before_the_first_byte(clock: FakeClock) -> None:
    engine = manager(streaming_pool(retry={"jitter": 0}), clock)
    call = Scripted(clock, {"a": [ServerError("x")] * 3, "b": [Reply(usage=None)]})
    result = await engine.execute(CallTask(), call)
    assert result.provider == "b"
    assert not result.settled
