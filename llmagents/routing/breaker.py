"""The per-provider circuit breaker, with a real half-open state.

Closed, the breaker lets every call through and counts failures: ``maxFailures`` in a row, or
(optionally) a failure share over ``threshold`` among at least ``minCalls`` calls of a sliding
window, opens it. Open, it refuses calls for the recovery time, which grows by
``recoveryMultiplier`` each time the breaker reopens without having recovered, up to
``maxRecoveryTime``. After that it is half-open: it admits at most ``halfOpenProbes`` calls at
once as probes while every other call goes to another provider; the first probe to succeed
closes it, the first to fail reopens it. Gateways that merely let a cooldown expire readmit
all traffic at once onto a provider that may still be down; the probe bound is what avoids
that stampede. An active health probe (a model listing, ``health.probeInterval``) that
succeeds moves an open breaker to half-open early; it never closes one, since answering a
listing is not answering calls.

Only the outcome of a call admitted in the current state counts: a call admitted while closed
that fails after the breaker opened tells nothing new, and a probe's outcome counts only while
the breaker is still half-open. Every state change is kept with its wall time and reason, for
status and for the metrics listener.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from llmagents.api.pool import CircuitBreakerSpec
from llmagents.api.status import BreakerState as BreakerState  # one definition, the API's
from llmagents.routing.clock import WallClock

logger = logging.getLogger(__name__)

TRANSITION_HISTORY = 64
"""Transitions kept per provider; older ones reach only the listener and the logs."""


class Admission(IntEnum):
    """The breaker's answer to one call; a probe must report its outcome as a probe."""

    REFUSED = 0
    CALL = 1
    PROBE = 2


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a breaker's state."""

    at: datetime
    from_state: BreakerState
    to_state: BreakerState
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "at": self.at.isoformat(),
            "from": self.from_state.value,
            "to": self.to_state.value,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transition:
        return cls(
            at=datetime.fromisoformat(data["at"]),
            from_state=BreakerState(data["from"]),
            to_state=BreakerState(data["to"]),
            reason=str(data["reason"]),
        )


TransitionListener = Callable[[str, Transition], None]


class CircuitBreaker:
    """One provider's breaker; the caller passes monotonic ``now`` readings."""

    __slots__ = (
        "_failure_count",
        "_max_failures",
        "_max_recovery",
        "_multiplier",
        "_on_transition",
        "_rate_min_calls",
        "_rate_threshold",
        "_rate_window",
        "_recovery",
        "_wall_clock",
        "_window",
        "consecutive_failures",
        "max_probes",
        "name",
        "open_until",
        "openings",
        "probes_in_flight",
        "state",
        "transitions",
    )

    def __init__(
        self,
        name: str,
        spec: CircuitBreakerSpec,
        *,
        wall_clock: WallClock,
        on_transition: TransitionListener | None = None,
    ) -> None:
        self.name = name
        self._max_failures = spec.max_failures
        self._recovery = spec.recovery_time.total_seconds()
        self._multiplier = spec.recovery_multiplier
        self._max_recovery = spec.max_recovery_time.total_seconds()
        self.max_probes = spec.half_open_probes
        rate = spec.failure_rate
        self._rate_window = rate.window.total_seconds() if rate is not None else 0.0
        self._rate_threshold = rate.threshold if rate is not None else 1.0
        self._rate_min_calls = rate.min_calls if rate is not None else 0
        self._window: deque[tuple[float, bool]] | None = deque() if rate is not None else None
        self._failure_count = 0
        self._wall_clock = wall_clock
        self._on_transition = on_transition
        self.state = BreakerState.CLOSED
        self.open_until = 0.0
        self.openings = 0
        self.consecutive_failures = 0
        self.probes_in_flight = 0
        self.transitions: deque[Transition] = deque(maxlen=TRANSITION_HISTORY)

    def outage(self) -> tuple[datetime, str] | None:
        """When the current outage began and why the breaker last opened; None while closed.

        An outage runs from the breaker's opening out of the closed state through every
        half-open probe and reopening until it closes again.
        """
        if self.state is BreakerState.CLOSED:
            return None
        since: datetime | None = None
        reason = ""
        for transition in reversed(self.transitions):
            if transition.to_state is BreakerState.OPEN:
                reason = reason or transition.reason
                since = transition.at
                if transition.from_state is BreakerState.CLOSED:
                    break
        return (since, reason) if since is not None else None

    def open_duration(self, openings: int) -> float:
        """How long the breaker stays open on its ``openings``-th opening in a row."""
        return min(self._recovery * self._multiplier ** (openings - 1), self._max_recovery)

    def refresh(self, now: float) -> BreakerState:
        """The state at ``now``: an open breaker whose recovery time passed is half-open."""
        if self.state is BreakerState.OPEN and now >= self.open_until:
            self._move(BreakerState.HALF_OPEN, "recovery time elapsed")
        return self.state

    def admit(self, now: float) -> Admission:
        """Whether a call may go to this provider now, and whether it is a probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Admission.CALL
        if state is BreakerState.OPEN:
            if now < self.open_until:
                return Admission.REFUSED
            self._move(BreakerState.HALF_OPEN, "recovery time elapsed")
        if self.probes_in_flight < self.max_probes:
            self.probes_in_flight += 1
            return Admission.PROBE
        return Admission.REFUSED

    def release(self, admission: Admission) -> None:
        """Give back an admission whose call never produced evidence either way."""
        if admission is Admission.PROBE:
            self.probes_in_flight -= 1

    def record_success(self, now: float, admission: Admission) -> None:
        if admission is Admission.PROBE:
            self.probes_in_flight -= 1
            if self.state is BreakerState.HALF_OPEN:
                self._close("probe succeeded")
            return
        if self.state is BreakerState.CLOSED:
            self.consecutive_failures = 0
            if self._window is not None:
                self._observe(now, failed=False)

    def record_failure(self, now: float, admission: Admission, kind: str) -> None:
        if admission is Admission.PROBE:
            self.probes_in_flight -= 1
            if self.state is BreakerState.HALF_OPEN:
                self._open(now, f"probe failed: {kind}")
            return
        if self.state is not BreakerState.CLOSED:
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self._max_failures:
            self._open(now, f"{self.consecutive_failures} consecutive failures, last {kind}")
            return
        if self._window is not None:
            self._observe(now, failed=True)
            calls = len(self._window)
            if (
                calls >= self._rate_min_calls
                and self._failure_count >= self._rate_threshold * calls
            ):
                self._open(
                    now,
                    f"{self._failure_count} of {calls} calls failed within "
                    f"{self._rate_window:g}s, last {kind}",
                )

    def force_open(self, now: float, until: float, reason: str) -> None:
        """Open until ``until`` because something outside this engine saw the provider fail.

        An already open breaker only ever stays open longer. When ``until`` passes the breaker
        is half-open as after any opening, so probes still find out whether the provider is back.
        """
        if self.state is BreakerState.OPEN:
            self.open_until = max(self.open_until, until)
            return
        self.open_until = until
        self._move(BreakerState.OPEN, f"forced open: {reason}")

    def on_probe(self, now: float, *, ok: bool, kind: str = "probe failed") -> None:
        """Take an active health probe's outcome into account.

        A probe lists models: it shows that the provider answers with this key, not that its
        calls succeed. So a good probe moves an open breaker to half-open at once (before
        its recovery time ends), and the half-open state's real calls close or reopen it;
        a probe never closes a breaker itself.
        """
        if ok:
            if self.state is BreakerState.OPEN:
                self._move(BreakerState.HALF_OPEN, "active probe succeeded")
            elif self.state is BreakerState.CLOSED:
                self.consecutive_failures = 0
        elif self.refresh(now) is BreakerState.HALF_OPEN:
            self._open(now, f"active probe failed: {kind}")
        else:
            self.record_failure(now, Admission.CALL, kind)

    def restore(
        self,
        *,
        state: BreakerState,
        open_until: float,
        openings: int,
        transitions: Iterable[Transition],
    ) -> None:
        """Put back a state saved in a checkpoint, without recording a transition."""
        self.state = state
        self.open_until = open_until
        self.openings = openings
        self.consecutive_failures = 0
        self.probes_in_flight = 0
        self._failure_count = 0
        if self._window is not None:
            self._window.clear()
        self.transitions.clear()
        self.transitions.extend(transitions)

    def _observe(self, now: float, *, failed: bool) -> None:
        window = self._window
        assert window is not None
        window.append((now, failed))
        if failed:
            self._failure_count += 1
        horizon = now - self._rate_window
        while window and window[0][0] <= horizon:
            if window.popleft()[1]:
                self._failure_count -= 1

    def _open(self, now: float, reason: str) -> None:
        self.openings += 1
        duration = self.open_duration(self.openings)
        self.open_until = now + duration
        self._move(BreakerState.OPEN, f"{reason}; open for {duration:g}s")

    def _close(self, reason: str) -> None:
        self.openings = 0
        self.consecutive_failures = 0
        self._failure_count = 0
        if self._window is not None:
            self._window.clear()
        self._move(BreakerState.CLOSED, reason)

    def _move(self, to_state: BreakerState, reason: str) -> None:
        transition = Transition(self._wall_clock(), self.state, to_state, reason)
        self.state = to_state
        self.transitions.append(transition)
        log = logger.warning if to_state is BreakerState.OPEN else logger.info
        log(
            "provider %s: breaker %s -> %s: %s",
            self.name,
            transition.from_state.value,
            to_state.value,
            reason,
        )
        if self._on_transition is not None:
            self._on_transition(self.name, transition)
