"""The status reporter's coalescing and catch-up, and the fleet-wide breaker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from llmagents.api.status import RunnerAgentStatus, RunnerPhase
from llmagents.kube import KubeUnavailable
from llmagents.retrying import Backoff
from llmagents.routing import BreakerState, CallTask
from llmagents.runner.fleet import FleetBreaker
from llmagents.runner.pool_client import PoolClient
from llmagents.runner.status import MemoryStatusSink, RunnerReport, StatusReporter
from llmagents.runner.tasks import task_request
from tooling.polling import eventually_async as eventually

from .conftest import KEYS, Fakes, config


class Unreachable(MemoryStatusSink):
    """A sink whose API server is down until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.refused = 0

    async def write(self, report: RunnerReport) -> None:
        if not self.up:
            self.refused += 1
            raise KubeUnavailable("connection refused")
        await super().write(report)


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def report(self) -> RunnerReport:
        return RunnerReport(RunnerAgentStatus(runner_phase=RunnerPhase.RUNNING,
                                              message=f"step {self.value}"))  # fmt: skip


async def test_many_changes_make_few_writes_and_the_last_one_wins() -> None:
    # The reporter reads the test's clock: how many intervals the changes span is then the
    # test's choice, not the scheduler's. (On the real clock, 50 sleeps of 4 ms stretched
    # past three 0.2 s intervals on a loaded machine and the count of writes flaked.)
    now = [0.0]
    sink, state = MemoryStatusSink(), Counter()
    reporter = StatusReporter(sink, state.report, min_interval=0.2, clock=lambda: now[0])
    job = asyncio.create_task(reporter.run())
    for step in range(50):
        state.value = step
        reporter.changed()
        now[0] += 0.002  # all 50 changes within the first interval
        await asyncio.sleep(0)  # the reporter's turn
    assert [r.status.message for r in sink.written] == ["step 0"]  # the first one at once
    assert not reporter.up_to_date  # the rest wait for the interval
    now[0] = 0.3  # the interval has passed
    await eventually(lambda: reporter.up_to_date)
    assert [r.status.message for r in sink.written] == ["step 0", "step 49"]
    reporter.close()
    await job


async def test_an_urgent_change_is_written_without_waiting_for_the_interval() -> None:
    sink, state = MemoryStatusSink(), Counter()
    reporter = StatusReporter(sink, state.report, min_interval=60)
    job = asyncio.create_task(reporter.run())
    reporter.changed()
    await eventually(lambda: len(sink.written) == 1)
    state.value = 1
    reporter.changed(urgent=True)
    await eventually(lambda: len(sink.written) == 2, timeout=2)
    state.value = 2
    reporter.changed()
    await asyncio.sleep(0.05)
    assert len(sink.written) == 2  # an ordinary change waits for the interval
    reporter.close()
    await job


async def test_status_catches_up_once_the_api_server_is_back() -> None:
    sink, state = Unreachable(), Counter()
    reporter = StatusReporter(sink, state.report, min_interval=0.01, retry=Backoff(0.01, 0.01))
    job = asyncio.create_task(reporter.run())
    reporter.changed(urgent=True)
    await eventually(lambda: sink.refused >= 1)
    state.value = 7
    reporter.changed()  # returns at once even though writes fail
    sink.up = True
    await eventually(lambda: reporter.up_to_date)
    assert sink.latest.status.message == "step 7"
    reporter.close()
    await job


async def test_an_unchanged_status_is_not_written_again() -> None:
    sink, state = MemoryStatusSink(), Counter()
    reporter = StatusReporter(sink, state.report, min_interval=0.01)
    job = asyncio.create_task(reporter.run())
    for _ in range(5):
        reporter.changed()
        await eventually(lambda: reporter.up_to_date)
        await asyncio.sleep(0.02)
    assert len(sink.written) == 1
    reporter.close()
    await job


def pool_status(provider: str, *, agents: int, open_breakers: int) -> dict:
    return {"providers": [{"name": provider, "healthy": open_breakers == 0, "agents": agents,
                           "openBreakers": open_breakers}]}  # fmt: skip


class Clock:
    """Monotonic and wall time that move only when the test moves them."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)


async def test_a_provider_the_fleet_has_open_starts_open_here(fakes: Fakes) -> None:
    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS)
    fleet = FleetBreaker(engine.manager)
    assert fleet.apply(pool_status("primary", agents=3, open_breakers=1)) == []
    assert fleet.apply(pool_status("primary", agents=3, open_breakers=2)) == ["primary"]
    assert engine.manager.status()["primary"].breaker is BreakerState.OPEN
    # The call goes to the fallback without a single attempt at the primary.
    result = await engine.complete(task_request(config(fakes).tasks[0]), CallTask())
    assert result.provider == "fallback" and fakes.primary.stats.requests == 0
    reason = engine.manager.transitions("primary")[-1].reason
    assert "forced open" in reason and "2 of 3 agents" in reason
    await engine.aclose()


@pytest.mark.parametrize(
    ("open_breakers", "agents", "opens"),
    [(1, 2, True), (2, 4, True), (1, 3, False), (2, 5, False), (3, 5, True), (1, 1, True),
     (0, 0, False), (0, 3, False)],
)  # fmt: skip
async def test_the_fleet_rule_is_at_least_half_of_the_agents_not_a_strict_majority(
    fakes: Fakes, open_breakers: int, agents: int, opens: bool
) -> None:
    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS)
    fleet = FleetBreaker(engine.manager)
    view = pool_status("primary", agents=agents, open_breakers=open_breakers)
    assert fleet.apply(view) == (["primary"] if opens else [])
    await engine.aclose()


async def test_after_the_recovery_time_a_probe_goes_through(fakes: Fakes) -> None:
    clock = Clock()
    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS,
                               clock=clock.monotonic, wall_clock=clock.wall)  # fmt: skip
    fleet = FleetBreaker(engine.manager, wall_clock=clock.wall)
    fleet.apply(pool_status("primary", agents=1, open_breakers=1))
    clock.now += 31  # the pool's recoveryTime is 30s
    result = await engine.complete(task_request(config(fakes).tasks[0]), CallTask())
    assert result.provider == "primary" and result.attempts[0].probe
    assert engine.manager.status()["primary"].breaker is BreakerState.CLOSED
    await engine.aclose()


async def test_the_fleet_view_is_taken_on_change_not_reapplied(fakes: Fakes) -> None:
    clock = Clock()
    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS,
                               clock=clock.monotonic, wall_clock=clock.wall)  # fmt: skip
    fleet = FleetBreaker(engine.manager, wall_clock=clock.wall)
    assert fleet.apply(pool_status("primary", agents=1, open_breakers=1)) == ["primary"]
    engine.manager.record_probe("primary", ok=True, latency=0.01)
    assert engine.manager.status()["primary"].breaker is BreakerState.HALF_OPEN
    result = await engine.complete(task_request(config(fakes).tasks[0]), CallTask())
    assert result.provider == "primary"  # recovered here: the half-open call closed it
    assert engine.manager.status()["primary"].breaker is BreakerState.CLOSED
    # The pool's status has not caught up yet: the same view must not push it open again.
    assert fleet.apply(pool_status("primary", agents=1, open_breakers=1)) == []
    assert fleet.apply(pool_status("primary", agents=1, open_breakers=0)) == []
    assert fleet.apply(pool_status("primary", agents=1, open_breakers=1)) == ["primary"]
    await engine.aclose()


async def test_a_pool_status_that_does_not_validate_is_ignored(fakes: Fakes) -> None:
    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS)
    fleet = FleetBreaker(engine.manager)
    assert fleet.apply({"providers": [{"name": "primary"}]}) == []
    assert fleet.apply(None) == []
    assert engine.manager.status()["primary"].breaker is BreakerState.CLOSED
    await engine.aclose()


async def test_status_tells_per_provider_why_and_until_when_it_is_open_and_what_it_cost(
    fakes: Fakes,
) -> None:
    from llmagents.runner.status import build_status

    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS)
    fakes.primary.core.update({"outage": True})
    request = task_request(config(fakes).tasks[0])
    for _ in range(3):  # maxFailures 2: two failures open the primary, then it is skipped
        result = await engine.complete(request, CallTask(input_tokens=5))
        assert result.provider == "fallback"
    status = build_status(engine.manager, phase=RunnerPhase.RUNNING, message=None,
                          started_at=datetime.now(UTC), tasks=None, last_checkpoint=None)  # fmt: skip
    by_name = {p.name: p for p in status.providers}
    primary, fallback = by_name["primary"], by_name["fallback"]
    assert primary.breaker_state.value == "open"
    assert primary.open_since is not None and primary.open_until is not None
    assert timedelta(seconds=29) < primary.open_until - primary.open_since <= timedelta(seconds=31)
    assert "2 consecutive failures" in (primary.breaker_reason or "")
    assert (primary.calls, primary.error_rate, primary.success_rate) == (2, 1.0, 0.0)
    assert primary.last_failure is not None and primary.last_failure.reason.startswith(
        ("server_error", "overloaded", "connection_failed")
    )
    assert primary.cost_usd == 0.0
    assert (fallback.calls, fallback.success_rate, fallback.error_rate) == (3, 1.0, 0.0)
    assert fallback.latency_mean_ms is not None and fallback.latency_p95_ms is not None
    assert fallback.cost_usd is not None and fallback.cost_usd > 0
    assert fallback.open_since is None and fallback.breaker_reason is None
    assert fallback.last_failure is None
    await engine.aclose()


async def test_status_and_the_pool_show_when_each_provider_last_answered(fakes: Fakes) -> None:
    from llmagents.operator.pool_status import fold_providers
    from llmagents.runner.status import build_status

    clock = Clock()
    engine = PoolClient.build(config(fakes, tasks=None), api_keys=KEYS,
                               clock=clock.monotonic, wall_clock=clock.wall)  # fmt: skip
    fakes.primary.core.update({"outage": True})
    await engine.complete(task_request(config(fakes).tasks[0]), CallTask(input_tokens=5))
    answered = clock.wall()
    status = build_status(engine.manager, phase=RunnerPhase.RUNNING, message=None,
                          started_at=answered, tasks=None, last_checkpoint=None)  # fmt: skip
    by_name = {p.name: p for p in status.providers}
    assert by_name["primary"].last_success is None
    assert by_name["fallback"].last_success == answered
    wire = RunnerAgentStatus.model_validate(status.to_wire())  # as the operator reads it
    pool = fold_providers(engine.manager.pool, [wire.providers])
    seen = {p.name: p.last_seen for p in pool}
    assert seen == {"primary": None, "fallback": answered}
    await engine.aclose()
