from __future__ import annotations

from datetime import timedelta

from llmagents.api.pool import CircuitBreakerSpec
from llmagents.routing.breaker import Admission, BreakerState, CircuitBreaker

from .helpers import FakeClock


def breaker(clock: FakeClock, **fields: object) -> CircuitBreaker:
    spec = CircuitBreakerSpec.model_validate(
        {"maxFailures": 3, "recoveryTime": "10s", "maxRecoveryTime": "35s", **fields}
    )
    return CircuitBreaker("primary", spec, wall_clock=clock.wall)


def fail(b: CircuitBreaker, clock: FakeClock, times: int = 1, kind: str = "server_error") -> None:
    for _ in range(times):
        admission = b.admit(clock.now)
        assert admission is not Admission.REFUSED
        b.record_failure(clock.now, admission, kind)


def states(b: CircuitBreaker) -> list[tuple[str, str]]:
    return [(t.from_state.value, t.to_state.value) for t in b.transitions]


def test_breaker_opens_after_max_failures_consecutive_failures(clock: FakeClock) -> None:
    b = breaker(clock)
    fail(b, clock, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, clock)
    assert b.state is BreakerState.OPEN
    assert b.admit(clock.now) is Admission.REFUSED
    assert "3 consecutive failures, last server_error" in b.transitions[-1].reason


def test_a_success_resets_the_consecutive_failure_count(clock: FakeClock) -> None:
    b = breaker(clock)
    fail(b, clock, 2)
    b.record_success(clock.now, b.admit(clock.now))
    fail(b, clock, 2)
    assert b.state is BreakerState.CLOSED


def test_breaker_whole_life_with_half_open_probes(clock: FakeClock) -> None:
    b = breaker(clock, halfOpenProbes=2)
    fail(b, clock, 3)
    opened_at = clock.wall()

    clock.advance(9.999)
    assert b.admit(clock.now) is Admission.REFUSED

    clock.advance(0.001)
    first = b.admit(clock.now)
    second = b.admit(clock.now)
    third = b.admit(clock.now)
    assert (first, second, third) == (Admission.PROBE, Admission.PROBE, Admission.REFUSED)
    assert b.state is BreakerState.HALF_OPEN

    b.record_failure(clock.now, first, "timeout")  # the first probe fails: open again, longer
    assert b.state is BreakerState.OPEN
    assert b.open_until == clock.now + 20
    b.record_success(clock.now, second)  # a late probe of the old half-open state changes nothing
    assert b.state is BreakerState.OPEN
    assert b.probes_in_flight == 0

    clock.advance(20)
    probe = b.admit(clock.now)
    assert probe is Admission.PROBE
    b.record_success(clock.now, probe)
    assert b.state is BreakerState.CLOSED
    assert b.openings == 0
    assert b.admit(clock.now) is Admission.CALL

    assert states(b) == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    assert b.transitions[0].at == opened_at
    assert b.transitions[1].at == opened_at + timedelta(seconds=10)
    assert b.transitions[2].reason == "probe failed: timeout; open for 20s"
    assert b.transitions[4].reason == "probe succeeded"


def test_open_time_grows_with_each_reopening_up_to_the_cap(clock: FakeClock) -> None:
    b = breaker(clock, recoveryMultiplier=2)
    fail(b, clock, 3)
    durations = [b.open_until - clock.now]
    for _ in range(3):
        clock.now = b.open_until
        fail(b, clock)  # the probe fails
        durations.append(b.open_until - clock.now)
    assert durations == [10, 20, 35, 35]


def test_recovery_time_starts_over_after_the_breaker_closed(clock: FakeClock) -> None:
    b = breaker(clock)
    fail(b, clock, 3)
    clock.now = b.open_until
    fail(b, clock)  # reopened for 20 s
    clock.now = b.open_until
    b.record_success(clock.now, b.admit(clock.now))
    fail(b, clock, 3)
    assert b.open_until - clock.now == 10


def test_failures_of_calls_admitted_before_the_opening_do_not_extend_it(clock: FakeClock) -> None:
    b = breaker(clock)
    late = b.admit(clock.now)
    fail(b, clock, 3)
    until = b.open_until
    clock.advance(1)
    b.record_failure(clock.now, late, "timeout")
    assert b.open_until == until
    assert len(b.transitions) == 1


def test_failure_rate_opens_the_breaker_once_enough_calls_were_seen(clock: FakeClock) -> None:
    b = breaker(
        clock, maxFailures=100, failureRate={"window": "60s", "threshold": 0.5, "minCalls": 4}
    )
    for ok in (True, False, True):
        admission = b.admit(clock.now)
        if ok:
            b.record_success(clock.now, admission)
        else:
            b.record_failure(clock.now, admission, "server_error")
        clock.advance(1)
    assert b.state is BreakerState.CLOSED  # 1 of 3: too few calls to judge
    fail(b, clock)
    assert b.state is BreakerState.OPEN  # 2 of 4 reaches the 50 % threshold
    assert "2 of 4 calls failed within 60s" in b.transitions[-1].reason


def test_failure_rate_forgets_calls_older_than_its_window(clock: FakeClock) -> None:
    b = breaker(
        clock, maxFailures=100, failureRate={"window": "10s", "threshold": 0.5, "minCalls": 2}
    )
    fail(b, clock)
    clock.advance(10)
    b.record_success(clock.now, b.admit(clock.now))
    b.record_success(clock.now, b.admit(clock.now))
    fail(b, clock)  # 1 of 3 in the window: the old failure no longer counts
    assert b.state is BreakerState.CLOSED


def test_force_open_refuses_calls_then_half_opens_for_probes(clock: FakeClock) -> None:
    b = breaker(clock)
    b.force_open(clock.now, clock.now + 60, "fleet view: 3 agents saw 5xx")
    assert b.admit(clock.now + 59) is Admission.REFUSED
    b.force_open(clock.now, clock.now + 30, "an older, shorter view")
    assert b.open_until == clock.now + 60  # only ever longer
    assert b.admit(clock.now + 60) is Admission.PROBE
    assert states(b) == [("closed", "open"), ("open", "half-open")]
    assert b.transitions[0].reason == "forced open: fleet view: 3 agents saw 5xx"


def test_released_probe_frees_its_slot_without_changing_state(clock: FakeClock) -> None:
    b = breaker(clock)
    fail(b, clock, 3)
    clock.now = b.open_until
    probe = b.admit(clock.now)
    assert b.admit(clock.now) is Admission.REFUSED
    b.release(probe)
    assert b.state is BreakerState.HALF_OPEN
    assert b.admit(clock.now) is Admission.PROBE


def test_an_active_probe_success_moves_an_open_breaker_to_half_open_never_to_closed(
    clock: FakeClock,
) -> None:
    # An active probe lists models: it shows the provider answers, not that calls succeed.
    b = breaker(clock)
    fail(b, clock, 3)
    b.on_probe(clock.now + 1, ok=True)
    assert b.state is BreakerState.HALF_OPEN
    assert b.transitions[-1].reason == "active probe succeeded"
    b.on_probe(clock.now + 2, ok=True)
    assert b.state is BreakerState.HALF_OPEN  # another probe decides nothing either
    probe = b.admit(clock.now + 2)
    assert probe is Admission.PROBE  # a real call does
    b.record_success(clock.now + 3, probe)
    assert b.state is BreakerState.CLOSED


def test_an_active_probe_success_after_the_recovery_time_still_leaves_it_half_open(
    clock: FakeClock,
) -> None:
    b = breaker(clock)
    fail(b, clock, 3)
    b.on_probe(b.open_until, ok=True)
    assert b.state is BreakerState.HALF_OPEN
    assert [t.to_state for t in b.transitions][-2:] == [BreakerState.OPEN, BreakerState.HALF_OPEN]
