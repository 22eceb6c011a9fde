"""The agent's hard spending limit over a period.

Spend counts real cost (from usage) within the current period: the agent's whole life, the
UTC day or the UTC month, read from the injected wall clock, so that a new day starts at
midnight UTC whatever the pod's timezone. Before each attempt the manager asks whether the
attempt's estimated cost still fits; estimates of attempts in flight are held as reservations
so that concurrent calls cannot together overspend what each alone would fit in. The state is
a small JSON document restored exactly from a checkpoint, as long as the period it belongs to
is still the current one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from llmagents.api.work import BudgetPeriod, BudgetSpec, OnExhausted
from llmagents.errors import BudgetExhausted
from llmagents.routing.clock import WallClock


def period_bounds(period: BudgetPeriod, now: datetime) -> tuple[datetime | None, datetime | None]:
    """Start and end of the period containing ``now``; ``total`` has neither."""
    now = now.astimezone(UTC)
    if period is BudgetPeriod.DAILY:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if period is BudgetPeriod.MONTHLY:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if start.month == 12:
            return start, start.replace(year=start.year + 1, month=1)
        return start, start.replace(month=start.month + 1)
    return None, None


class Budget:
    """Spend against a ``BudgetSpec`` in its current period."""

    __slots__ = (
        "_in_flight",
        "_period_end",
        "_wall_clock",
        "limit",
        "on_exhausted",
        "period",
        "period_start",
        "reserved",
        "spent",
    )

    def __init__(self, spec: BudgetSpec, *, wall_clock: WallClock) -> None:
        self.limit = spec.limit
        self.period = spec.period
        self.on_exhausted = spec.on_exhausted
        self._wall_clock = wall_clock
        self.spent = 0.0
        self.reserved = 0.0
        self._in_flight = 0
        self.period_start, self._period_end = period_bounds(self.period, wall_clock())

    @property
    def local_only(self) -> bool:
        return self.on_exhausted is OnExhausted.LOCAL_ONLY

    def roll(self) -> None:
        """Start a new period if the wall clock has left the current one."""
        end = self._period_end
        if end is None:
            return
        now = self._wall_clock()
        if now >= end or now < self.period_start:  # type: ignore[operator]
            self.period_start, self._period_end = period_bounds(self.period, now)
            self.spent = 0.0

    def exhausted(self) -> bool:
        """Whether the period's spend has reached the limit (rolling the period first)."""
        self.roll()
        return self.spent >= self.limit

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.spent)

    def affordable(self, estimate: float) -> bool:
        """Whether an attempt estimated at ``estimate`` fits beside spend and reservations."""
        return estimate <= 0.0 or self.spent + self.reserved + estimate <= self.limit

    def reserve(self, estimate: float) -> None:
        self._in_flight += 1
        self.reserved += estimate

    def release(self, estimate: float) -> None:
        self._in_flight -= 1
        # Adding and subtracting the same floats need not return to 0.0 exactly.
        self.reserved = self.reserved - estimate if self._in_flight else 0.0

    def charge(self, cost: float) -> None:
        self.roll()
        self.spent += cost

    def error(self, why: str = "is spent") -> BudgetExhausted:
        return BudgetExhausted(
            f"budget of ${self.limit:g} per {self.period.value} period {why} "
            f"(${self.spent:.6f} spent); raise spec.budget.limit or wait for the next period",
            period=self.period.value,
            spent=self.spent,
            limit=self.limit,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "period": self.period.value,
            "onExhausted": self.on_exhausted.value,
            "periodStart": self.period_start.isoformat() if self.period_start else None,
            "spent": self.spent,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back a checkpoint's spend if it belongs to the current period.

        Spend of an earlier day or month, or of a different period kind (the spec changed),
        does not count against the current period.
        """
        self.roll()
        start = self.period_start.isoformat() if self.period_start else None
        if data.get("period") == self.period.value and data.get("periodStart") == start:
            self.spent = float(data["spent"])
