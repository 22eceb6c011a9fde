"""How long a background loop waits before trying again after failures in a row.

The runner's and the operator's background loops (reconciling, checkpoint and status
writes, the pool watch, the runner's start, restarting a background task) all wait by one
ladder of delays, each loop between its own first step and cap, so that a failing API
server or disk is retried soon at first and at a steady, modest rate after a while.
(The engine's retries of provider calls are a policy of the pool, ``routing.backoff``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

LADDER = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds: the steps every loop climbs, from its ``first`` up to its ``cap``."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """The delays of one loop: ``first``, the ladder's steps above it, then ``cap`` for good."""

    first: float = 1.0
    cap: float = 30.0
    steps: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            raise ValueError(f"need 0 < first ({self.first:g}) <= cap ({self.cap:g})")
        middle = tuple(s for s in LADDER if self.first < s < self.cap)
        steps = (self.first, *middle, self.cap) if self.first < self.cap else (self.cap,)
        object.__setattr__(self, "steps", steps)

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` earlier failures in a row (0: after the first one)."""
        return self.steps[min(max(failures, 0), len(self.steps) - 1)]
