from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from llmagents.chat import Usage
from llmagents.errors import (
    AllProvidersFailed,
    AuthFailed,
    BadRequest,
    ClientBusy,
    DeadlineExceeded,
    ModelNotFound,
    RateLimited,
    ServerError,
)
from llmagents.routing import Attempt, BreakerState, CallTask, SkipReason

from .helpers import FakeClock, Recorder, Reply, Scripted, Slow, manager, pool, provider

NO_JITTER = {"jitter": 0, "initialDelay": "1s", "multiplier": 2, "maxDelay": "30s"}


def three(**fields: object):
    return pool(
        provider("a", priority=1, maxRetries=2),
        provider("b", priority=2, maxRetries=2),
        provider("c", priority=3, maxRetries=2),
        **{"retry": NO_JITTER, **fields},
    )


async def test_a_healthy_primary_answers_with_one_attempt_and_no_fallback(
    clock: FakeClock,
) -> None:
    engine = manager(three(), clock)
    call = Scripted(clock, latency=0.4)
    result = await engine.execute(CallTask(input_tokens=10), call)
    assert result.provider == "a"
    assert result.value.text == "ok"
    assert [(r.provider, r.number, r.retry, r.outcome) for r in result.attempts] == [
        ("a", 1, 0, "ok")
    ]
    assert result.fallbacks == []
    assert result.latency == pytest.approx(0.4)
    assert result.usage == Usage(100, 50)
    assert engine.current_provider == "a"


async def test_retryable_errors_are_retried_with_backoff_then_fall_back(
    clock: FakeClock,
) -> None:
    engine = manager(three(), clock)
    call = Scripted(clock, {"a": [ServerError("boom")] * 3})
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["a", "a", "a", "b"]
    assert clock.sleeps == [1.0, 2.0]  # two retries at a, then b at once
    assert [r.waited for r in result.attempts] == [0.0, 1.0, 2.0, 0.0]
    assert [a.retry for a in call.attempts] == [0, 1, 2, 0]
    assert [a.number for a in call.attempts] == [1, 2, 3, 4]
    assert result.provider == "b"
    (fallback,) = result.fallbacks
    assert (fallback.from_provider, fallback.to_provider, fallback.reason) == (
        "a",
        "b",
        "server_error",
    )


async def test_retry_after_is_honoured_before_retrying(clock: FakeClock) -> None:
    engine = manager(three(), clock)
    call = Scripted(clock, {"a": [RateLimited("slow down", retry_after=12.0)]})
    result = await engine.execute(CallTask(), call)
    assert clock.sleeps == [12.0]
    assert call.times[1] - call.times[0] == pytest.approx(12.25)  # latency + Retry-After
    assert result.provider == "a"


@pytest.mark.parametrize("error", [AuthFailed("no"), BadRequest("bad"), ModelNotFound("gone")])
async def test_non_retryable_errors_move_on_at_once_and_mark_the_provider(
    clock: FakeClock, error: Exception
) -> None:
    engine = manager(three(), clock)
    call = Scripted(clock, {"a": [error]})
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["a", "b"]
    assert clock.sleeps == []
    assert result.fallbacks[0].reason == error.kind.value  # type: ignore[attr-defined]
    status = engine.status()["a"]
    assert not status.healthy
    assert status.misconfigured is not None
    assert status.misconfigured.startswith(error.kind.value)  # type: ignore[attr-defined]
    assert status.breaker is BreakerState.CLOSED  # configuration, not health


async def test_a_full_connection_pool_moves_on_without_blaming_the_provider(
    clock: FakeClock,
) -> None:
    engine = manager(three(), clock)
    for _ in range(10):  # far past the breaker's failure threshold
        call = Scripted(clock, {"a": [ClientBusy("all connections busy")]})
        result = await engine.execute(CallTask(), call)
        assert call.providers == ["a", "b"] and result.provider == "b"
    assert clock.sleeps == []
    status = engine.status()["a"]
    assert status.breaker is BreakerState.CLOSED
    assert status.success_rate is None  # no health sample either way
    assert status.misconfigured is None


async def test_a_misconfigured_provider_goes_last_until_it_answers_again(
    clock: FakeClock,
) -> None:
    engine = manager(three(), clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [AuthFailed("no")]}))
    assert engine.plan(CallTask()) == ["b", "c", "a"]
    call = Scripted(clock, {"b": [ServerError("x")] * 3, "c": [ServerError("x")] * 3})
    result = await engine.execute(CallTask(), call)
    assert result.provider == "a"
    assert engine.status()["a"].misconfigured is None
    assert engine.plan(CallTask()) == ["a", "b", "c"]


async def test_per_error_kind_policy_limits_retries_of_that_kind(clock: FakeClock) -> None:
    spec = three(retry={**NO_JITTER, "perErrorKind": {"serverError": 0, "rateLimited": 4}})
    engine = manager(spec, clock)
    call = Scripted(clock, {"a": [RateLimited("x")] * 4, "b": [ServerError("x")]})
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["a"] * 5
    assert result.provider == "a"
    call = Scripted(clock, {"a": [ServerError("x")], "b": [ServerError("x")]})
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["a", "b", "c"]


async def test_a_breaker_that_opens_during_retries_stops_them(clock: FakeClock) -> None:
    engine = manager(three(circuitBreaker={"maxFailures": 2}), clock)
    call = Scripted(clock, {"a": [ServerError("x")] * 3})
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["a", "a", "b"]
    assert result.fallbacks[0].reason == "server_error"
    assert engine.status()["a"].breaker is BreakerState.OPEN
    call = Scripted(clock)
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["b"]
    assert result.fallbacks[0].reason == SkipReason.BREAKER_OPEN


async def test_all_providers_failing_raises_with_every_attempt_and_last_error(
    clock: FakeClock,
) -> None:
    engine = manager(three(), clock)
    call = Scripted(
        clock,
        {"a": [ServerError("a down")] * 3, "b": [AuthFailed("key")], "c": [ServerError("c")] * 3},
    )
    with pytest.raises(AllProvidersFailed) as caught:
        await engine.execute(CallTask(), call)
    error = caught.value
    assert len(error.attempts) == 7
    assert {name: e.kind.value for name, e in error.last_errors.items()} == {
        "a": "server_error",
        "b": "auth",
        "c": "server_error",
    }
    assert error.reasons["b"] == "auth: key"
    assert "a: server_error: a down" in str(error)


async def test_an_empty_selection_fails_with_an_actionable_message(clock: FakeClock) -> None:
    engine = manager(three(), clock)
    with pytest.raises(AllProvidersFailed, match="add a matching provider"):
        await engine.execute(CallTask(providers=frozenset({"zz"})), Scripted(clock))


async def test_attempt_timeout_is_the_provider_timeout_when_it_fits(clock: FakeClock) -> None:
    engine = manager(pool(provider("a", timeout="10s"), callDeadline="60s"), clock)
    call = Scripted(clock)
    await engine.execute(CallTask(), call)
    assert call.attempts[0].timeout == 10.0


def slow_pool(initial_delay: str):
    return pool(
        *(provider(n, priority=i, timeout="10s", maxRetries=3) for i, n in enumerate("abc")),
        retry={**NO_JITTER, "initialDelay": initial_delay},
        callDeadline="25s",
    )


async def test_deadline_bounds_retries_and_fallbacks_together(clock: FakeClock) -> None:
    # Three providers, three retries each, 10 s timeouts: two minutes without a deadline.
    engine = manager(slow_pool("500ms"), clock)
    call = Scripted(clock, {name: [Slow(60, Reply())] * 4 for name in "abc"})
    start = clock.now
    with pytest.raises(DeadlineExceeded) as caught:
        await engine.execute(CallTask(), call)
    assert clock.now - start == pytest.approx(25.0)
    # a: 0-10; its retry fits (10.5-20.5); the next does not, and no other provider's
    # timeout fits in the 4.5 s left either, so a gets what is left.
    assert call.providers == ["a", "a", "a"]
    assert [a.timeout for a in call.attempts] == [10.0, 10.0, pytest.approx(3.5)]
    assert [r.outcome for r in caught.value.attempts] == ["timeout"] * 3


async def test_a_retry_that_cannot_fit_moves_on_to_a_provider_that_can(clock: FakeClock) -> None:
    engine = manager(slow_pool("6s"), clock)
    call = Scripted(clock, {name: [Slow(60, Reply())] * 4 for name in "abc"})
    start = clock.now
    with pytest.raises(DeadlineExceeded):
        await engine.execute(CallTask(), call)
    assert clock.now - start == pytest.approx(25.0)
    # a: 0-10; waiting 6 s then 10 s would pass the deadline while b fits: b at once, 10-20;
    # 5 s left: no retry fits, c gets what is left.
    assert call.providers == ["a", "b", "c"]
    assert [a.timeout for a in call.attempts] == [10.0, 10.0, pytest.approx(5.0)]
    assert clock.sleeps == []


async def test_a_provider_whose_timeout_does_not_fit_is_passed_over_for_one_that_does(
    clock: FakeClock,
) -> None:
    spec = pool(
        provider("slow", priority=1, timeout="60s"),
        provider("local", type="onnx", priority=2, timeout="20s"),
        callDeadline="30s",
    )
    engine = manager(spec, clock)
    call = Scripted(clock)
    result = await engine.execute(CallTask(), call)
    assert call.providers == ["local"]
    assert result.fallbacks[0].reason == SkipReason.DEADLINE


async def test_a_per_call_deadline_overrides_the_pool_deadline(clock: FakeClock) -> None:
    engine = manager(pool(provider("a", timeout="30s"), callDeadline="120s"), clock)
    call = Scripted(clock)
    await engine.execute(CallTask(deadline=4.0), call)
    assert call.attempts[0].timeout == 4.0


async def test_a_backoff_that_would_outlast_the_deadline_is_not_slept(clock: FakeClock) -> None:
    engine = manager(pool(provider("a", timeout="5s"), callDeadline="8s"), clock)
    call = Scripted(clock, {"a": [RateLimited("x", retry_after=30)]})
    with pytest.raises(DeadlineExceeded):
        await engine.execute(CallTask(), call)
    assert clock.sleeps == []
    assert len(call.attempts) == 1


async def test_an_unexpected_exception_propagates_and_records_nothing(clock: FakeClock) -> None:
    engine = manager(three(circuitBreaker={"maxFailures": 1}), clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    clock.advance(30)  # a's breaker is half-open: the next call to a is a probe

    async def buggy(attempt: Attempt) -> Reply:
        raise KeyError("bug in the caller")

    with pytest.raises(KeyError):
        await engine.execute(CallTask(), buggy)
    a = engine.status()["a"]
    assert a.breaker is BreakerState.HALF_OPEN
    assert a.success_rate == 0.0  # only the earlier server error is in the window
    call = Scripted(clock)
    await engine.execute(CallTask(), call)
    assert call.attempts[0].probe  # the probe slot was given back
    assert engine.status()["a"].breaker is BreakerState.CLOSED


async def test_half_open_admits_one_probe_while_other_calls_go_elsewhere(
    clock: FakeClock,
) -> None:
    engine = manager(three(circuitBreaker={"maxFailures": 1, "recoveryTime": "5s"}), clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    clock.advance(5)
    release = asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def call(attempt: Attempt) -> Reply:
        seen.append((attempt.provider.name, attempt.probe))
        if attempt.provider.name == "a":
            await release.wait()
        return Reply()

    probe = asyncio.create_task(engine.execute(CallTask(), call))
    await asyncio.sleep(0)
    others = [await engine.execute(CallTask(), call) for _ in range(3)]
    assert [r.provider for r in others] == ["b", "b", "b"]
    assert {r.fallbacks[0].reason for r in others} == {SkipReason.HALF_OPEN_BUSY}
    release.set()
    assert (await probe).provider == "a"
    assert seen[0] == ("a", True)
    assert engine.status()["a"].breaker is BreakerState.CLOSED


async def test_listener_sees_attempts_fallbacks_transitions_and_costs(clock: FakeClock) -> None:
    recorder = Recorder()
    spec = three(circuitBreaker={"maxFailures": 1})
    engine = manager(spec, clock, listener=recorder)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    assert [r.outcome for r in recorder.attempts] == ["server_error", "ok"]
    assert [(f.from_provider, f.to_provider) for f in recorder.fallbacks] == [("a", "b")]
    assert [(p, t.to_state) for p, t in recorder.transitions] == [("a", BreakerState.OPEN)]
    assert [(p, u) for p, u, _ in recorder.costs] == [("b", Usage(100, 50))]


async def test_concurrent_calls_interleave_without_losing_attempts(clock: FakeClock) -> None:
    engine = manager(three(), clock)
    call = Scripted(clock, {"a": [ServerError("x")] * 5})
    results = await asyncio.gather(*(engine.execute(CallTask(), call) for _ in range(6)))
    assert sum(len(r.attempts) for r in results) == len(call.attempts)
    assert engine.spend.calls == 6


async def test_deferred_bookkeeping_waits_but_the_charge_does_not(clock: FakeClock) -> None:
    later: list[Callable[[], object]] = []
    priced = {"pricing": {"inputPerMillion": 1, "outputPerMillion": 2}}
    engine = manager(pool(provider("a", **priced)), clock, defer=later.append)
    result = await engine.execute(CallTask(input_tokens=10), Scripted(clock, latency=0.4))
    assert result.cost > 0 and engine.spend.cost == result.cost  # charged at once
    assert engine.status()["a"].last_success is None  # the health sample waits
    assert len(later) == 1
    later.pop()()
    assert engine.status()["a"].last_success is not None


async def test_a_probe_settles_its_half_open_breaker_at_once_even_when_deferring(
    clock: FakeClock,
) -> None:
    later: list[Callable[[], object]] = []
    engine = manager(three(circuitBreaker={"maxFailures": 1, "recoveryTime": "5s"}), clock,
                     defer=later.append)  # fmt: skip
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    later.clear()  # b's success, deferred
    clock.advance(5)
    result = await engine.execute(CallTask(), Scripted(clock))
    assert result.attempts[-1].probe
    assert engine.status()["a"].breaker is BreakerState.CLOSED
    assert later == []
