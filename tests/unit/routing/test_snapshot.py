from __future__ import annotations

import json
from datetime import timedelta

import pytest

from llmagents.errors import AllProvidersFailed, AuthFailed, ConfigError, ServerError
from llmagents.routing import BreakerState, CallTask

from .helpers import FakeClock, Scripted, manager, pool, provider


def two(**fields: object):
    return pool(
        provider("a", priority=1, pricing={"inputPerMillion": 1, "outputPerMillion": 2}),
        provider("local", type="onnx", priority=2),
        **{"circuitBreaker": {"maxFailures": 1, "recoveryTime": "30s"}, **fields},
    )


async def test_snapshot_is_json_and_tells_breakers_health_spend_and_misconfiguration(
    clock: FakeClock,
) -> None:
    engine = manager(two(), clock, budget={"limit": 2.0, "period": "monthly"})
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    snapshot = json.loads(json.dumps(engine.snapshot()))
    a = snapshot["providers"]["a"]
    assert a["breaker"]["state"] == "open"
    opened = clock.wall() - timedelta(seconds=0.25)  # before local's 0.25 s answer
    assert a["breaker"]["openUntil"] == (opened + timedelta(seconds=30)).isoformat()
    assert a["breaker"]["transitions"][0]["to"] == "open"
    assert a["health"]["errorRate"] == 1.0
    assert snapshot["providers"]["local"]["health"]["successRate"] == 1.0
    assert snapshot["spend"]["byProvider"]["local"]["inputTokens"] == 100
    assert snapshot["budget"]["period"] == "monthly"
    assert snapshot["currentProvider"] == "local"


async def test_restore_keeps_an_open_breaker_open_until_its_wall_time(clock: FakeClock) -> None:
    spec = two()
    engine = manager(spec, clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    saved = engine.snapshot()

    clock.advance(10)  # the new process starts 10 s later, with its own monotonic origin
    restored = manager(spec, clock)
    restored.restore(saved)
    assert restored.status()["a"].breaker is BreakerState.OPEN
    assert restored.plan(CallTask()) == ["a", "local"]
    assert (await restored.execute(CallTask(), Scripted(clock))).provider == "local"
    clock.advance(20)
    call = Scripted(clock)
    assert (await restored.execute(CallTask(), call)).provider == "a"
    assert call.attempts[0].probe
    assert [t.to_state for t in restored.transitions("a")] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


async def test_restore_turns_half_open_into_an_immediate_probe(clock: FakeClock) -> None:
    spec = two()
    engine = manager(spec, clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    clock.advance(30)
    assert engine.status()["a"].breaker is BreakerState.HALF_OPEN
    restored = manager(spec, clock)
    restored.restore(engine.snapshot())
    call = Scripted(clock)
    await restored.execute(CallTask(), call)
    assert call.attempts[0].probe


async def test_restore_keeps_when_each_provider_last_answered_and_last_failed(
    clock: FakeClock,
) -> None:
    # Status shows lastSuccess and the pool lastSeen; a restarted runner must not blank them.
    spec = two()
    engine = manager(spec, clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    before = engine.status()
    assert before["local"].last_success is not None and before["a"].last_failure is not None
    saved = json.loads(json.dumps(engine.snapshot()))
    clock.advance(60)
    restored = manager(spec, clock)
    restored.restore(saved)
    after = restored.status()
    assert after["local"].last_success == before["local"].last_success
    assert after["a"].last_failure == before["a"].last_failure
    assert after["a"].last_success is None


async def test_restore_does_not_carry_over_misconfiguration(clock: FakeClock) -> None:
    spec = two()
    engine = manager(spec, clock)
    await engine.execute(CallTask(), Scripted(clock, {"a": [AuthFailed("bad key")]}))
    restored = manager(spec, clock)
    restored.restore(engine.snapshot())
    assert restored.status()["a"].misconfigured is None


async def test_restore_refuses_a_snapshot_of_another_version(clock: FakeClock) -> None:
    engine = manager(two(), clock)
    with pytest.raises(ConfigError, match="version"):
        engine.restore({**engine.snapshot(), "version": 99})


async def test_spend_on_a_provider_removed_from_the_pool_still_counts(clock: FakeClock) -> None:
    engine = manager(two(), clock)
    await engine.execute(CallTask(), Scripted(clock))
    smaller = manager(pool(provider("local", type="onnx")), clock)
    smaller.restore(engine.snapshot())
    assert smaller.spend == engine.spend
    assert smaller.current_provider is None


async def test_force_open_sends_calls_elsewhere_until_it_expires(clock: FakeClock) -> None:
    engine = manager(two(), clock)
    engine.force_open(
        "a", reason="fleet: 4 agents saw 503", until=clock.wall() + timedelta(minutes=2)
    )
    status = engine.status()["a"]
    assert (status.breaker, status.healthy) == (BreakerState.OPEN, False)
    assert status.open_until == clock.wall() + timedelta(minutes=2)
    assert (await engine.execute(CallTask(), Scripted(clock))).provider == "local"
    clock.advance(120)
    call = Scripted(clock)
    assert (await engine.execute(CallTask(), call)).provider == "a"
    assert call.attempts[0].probe


async def test_status_summarises_each_provider(clock: FakeClock) -> None:
    engine = manager(two(circuitBreaker={"maxFailures": 5}), clock)
    for latency in (1.0, 2.0, 3.0):
        await engine.execute(CallTask(), Scripted(clock, latency=latency))
    await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")]}))
    a = engine.status()["a"]
    assert a.healthy
    assert a.breaker is BreakerState.CLOSED
    assert a.success_rate == 0.8  # the failed attempt's retry succeeded
    assert a.p95_latency == 3.0
    assert a.to_dict()["breaker"] == "closed"


async def test_no_probes_are_due_without_an_interval(clock: FakeClock) -> None:
    engine = manager(two(), clock)
    assert engine.due_probes() == []


async def test_probes_are_due_for_free_providers_idle_for_an_interval(clock: FakeClock) -> None:
    engine = manager(two(health={"probeInterval": "60s"}), clock)
    assert [p.name for p in engine.due_probes()] == ["local"]  # paid ones are off by default
    engine.record_probe("local", ok=True, latency=0.2)
    assert engine.due_probes() == []
    clock.advance(60)
    assert [p.name for p in engine.due_probes()] == ["local"]
    assert engine.snapshot()["providers"]["local"]["health"]["lastProbe"] is not None


async def test_paid_providers_are_probed_when_the_pool_allows_it(clock: FakeClock) -> None:
    engine = manager(two(health={"probeInterval": "60s", "probePaidProviders": True}), clock)
    assert [p.name for p in engine.due_probes()] == ["a", "local"]


async def test_failed_probes_can_open_a_breaker_and_a_good_one_lets_a_call_close_it(
    clock: FakeClock,
) -> None:
    engine = manager(two(health={"probeInterval": "60s"}), clock)
    engine.record_probe("local", ok=False, latency=5.0, error=ServerError("down"))
    assert engine.status()["local"].breaker is BreakerState.OPEN
    with pytest.raises(AllProvidersFailed):
        await engine.execute(CallTask(free_only=True), Scripted(clock))
    clock.advance(1)
    engine.record_probe("local", ok=True, latency=0.3)
    assert engine.status()["local"].breaker is BreakerState.HALF_OPEN
    await engine.execute(CallTask(free_only=True), Scripted(clock))
    assert engine.status()["local"].breaker is BreakerState.CLOSED
