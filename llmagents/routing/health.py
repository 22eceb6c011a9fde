"""What the engine knows about each provider's recent behaviour.

Two views of the same outcomes. A sliding window (``HealthSpec.window``) gives the figures
people read: success and error rate, mean and p95 latency, computed when asked, never per
call. Exponentially weighted moving averages of latency and success give the
performance-optimized strategy an O(1) score that follows change quickly. Latency figures come
from successful calls only: a fast refusal or a timeout says nothing about how long an answer
takes, and both already show in the error rate.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmagents.routing.clock import to_wall

EWMA_ALPHA = 0.2
"""Weight of the newest outcome in the moving averages."""

MAX_SAMPLES = 4096
"""Outcomes kept per provider whatever the window, to bound memory at high call rates."""

_MIN_SUCCESS = 0.02


@dataclass(frozen=True, slots=True)
class HealthStats:
    """A provider's figures over the health window."""

    calls: int
    successes: int
    success_rate: float | None
    error_rate: float | None
    mean_latency: float | None
    p95_latency: float | None
    consecutive_failures: int
    last_success: datetime | None
    last_failure: datetime | None
    last_probe: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "calls": self.calls,
            "successes": self.successes,
            "successRate": self.success_rate,
            "errorRate": self.error_rate,
            "meanLatency": self.mean_latency,
            "p95Latency": self.p95_latency,
            "consecutiveFailures": self.consecutive_failures,
            "lastSuccess": iso(self.last_success),
            "lastFailure": iso(self.last_failure),
            "lastProbe": iso(self.last_probe),
        }


class Health:
    """One provider's outcomes; the caller passes monotonic ``now`` readings."""

    __slots__ = (
        "_samples",
        "_window",
        "consecutive_failures",
        "ewma_latency",
        "ewma_success",
        "last_failure",
        "last_probe",
        "last_success",
    )

    def __init__(self, window: float) -> None:
        self._window = window
        self._samples: deque[tuple[float, bool, float]] = deque(maxlen=MAX_SAMPLES)
        self.consecutive_failures = 0
        self.ewma_latency: float | None = None
        self.ewma_success = 1.0
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_probe: float | None = None

    def record(self, now: float, *, ok: bool, latency: float) -> None:
        self._samples.append((now, ok, latency))
        if ok:
            self.consecutive_failures = 0
            self.last_success = now
            self.ewma_success += EWMA_ALPHA * (1.0 - self.ewma_success)
            previous = self.ewma_latency
            self.ewma_latency = (
                latency if previous is None else previous + EWMA_ALPHA * (latency - previous)
            )
        else:
            self.consecutive_failures += 1
            self.last_failure = now
            self.ewma_success -= EWMA_ALPHA * self.ewma_success

    def restore(self, *, last_success: float | None, last_failure: float | None) -> None:
        """Put back when the provider last answered and last failed (from a checkpoint); the
        window's samples start afresh."""
        self.last_success = last_success
        self.last_failure = last_failure

    def record_probe(self, now: float, *, ok: bool, latency: float) -> None:
        self.last_probe = now
        self.record(now, ok=ok, latency=latency)

    def score(self) -> float:
        """Expected seconds to a success: lower is better; an untried provider scores 0.

        Scoring the unknown best makes the performance strategy try each provider once and
        then rank it by what it measured, rather than never learning about a provider.
        """
        latency = self.ewma_latency
        if latency is None:
            return 0.0
        return latency / max(self.ewma_success, _MIN_SUCCESS)

    @property
    def last_activity(self) -> float | None:
        """When the provider was last heard from, by a call or a probe."""
        times = [
            t for t in (self.last_success, self.last_failure, self.last_probe) if t is not None
        ]
        return max(times) if times else None

    def stats(self, now: float, wall_now: datetime) -> HealthStats:
        horizon = now - self._window
        calls = successes = 0
        latencies: list[float] = []
        for at, ok, latency in self._samples:
            if at < horizon:
                continue
            calls += 1
            if ok:
                successes += 1
                latencies.append(latency)
        latencies.sort()

        def wall(instant: float | None) -> datetime | None:
            return to_wall(instant, now=now, wall_now=wall_now) if instant is not None else None

        return HealthStats(
            calls=calls,
            successes=successes,
            success_rate=successes / calls if calls else None,
            error_rate=(calls - successes) / calls if calls else None,
            mean_latency=sum(latencies) / len(latencies) if latencies else None,
            p95_latency=_percentile(latencies, 0.95) if latencies else None,
            consecutive_failures=self.consecutive_failures,
            last_success=wall(self.last_success),
            last_failure=wall(self.last_failure),
            last_probe=wall(self.last_probe),
        )


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(1, math.ceil(len(ordered) * share)) - 1]
