from __future__ import annotations

from datetime import timedelta

from llmagents.routing import Health

from .helpers import FakeClock


def test_health_reports_rates_and_latency_over_its_window(clock: FakeClock) -> None:
    health = Health(window=60.0)
    for i in range(20):
        health.record(clock.now, ok=True, latency=float(i + 1))
        clock.advance(1)
    health.record(clock.now, ok=False, latency=30.0)
    stats = health.stats(clock.now, clock.wall())
    assert (stats.calls, stats.successes) == (21, 20)
    assert stats.error_rate == 1 / 21
    assert stats.mean_latency == 10.5  # failures say nothing about answer latency
    assert stats.p95_latency == 19.0
    assert stats.consecutive_failures == 1
    assert stats.last_failure == clock.wall()
    assert stats.last_success == clock.wall() - timedelta(seconds=1)


def test_health_forgets_outcomes_older_than_its_window(clock: FakeClock) -> None:
    health = Health(window=10.0)
    health.record(clock.now, ok=False, latency=1.0)
    clock.advance(11)
    health.record(clock.now, ok=True, latency=1.0)
    stats = health.stats(clock.now, clock.wall())
    assert (stats.calls, stats.success_rate) == (1, 1.0)
    assert stats.last_failure is not None  # last times are kept beyond the window


def test_an_empty_window_has_no_rates(clock: FakeClock) -> None:
    stats = Health(window=10.0).stats(clock.now, clock.wall())
    assert (stats.success_rate, stats.p95_latency, stats.last_success) == (None, None, None)


def test_score_rewards_speed_and_punishes_failures() -> None:
    fast, slow, flaky = Health(60), Health(60), Health(60)
    for _ in range(5):
        fast.record(0, ok=True, latency=0.5)
        slow.record(0, ok=True, latency=2.0)
        flaky.record(0, ok=True, latency=0.5)
        flaky.record(0, ok=False, latency=0.1)
    assert Health(60).score() == 0.0
    assert fast.score() < flaky.score() < slow.score()
