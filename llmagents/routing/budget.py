"""The agent's hard spending limit over a period.

Spend counts real cost (from usage) within the current period: the agent's whole life, the
UTC day or the UTC month, read from the injected wall clock, so that a new day starts at
midnight UTC whatever the pod's timezone.

The limit is hard. Before each paid attempt the manager asks two things: whether the
attempt's *expected* cost (estimated input and output) fits in what is left, which decides
whether the provider is used at all; and how many output tokens its *worst* case may have
(``output_limit``): the request's output limit is lowered so that the estimated input plus
that many output tokens at the provider's prices fits. The worst case is held as a
reservation while the attempt is in flight, so that concurrent calls cannot together
overspend. What can still overshoot is the input estimate's error alone (the provider counts
the prompt's tokens, the runner estimates them from its length), and an answer longer than
the limit sent, which a provider does not produce.

The state is a small JSON document restored exactly from a checkpoint, as long as the period
it belongs to is still the current one; a document with a negative or non-finite spend is
refused (``ValueError``), never taken as a refund.
"""

from __future__ import annotations

import math
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
        "_full",
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
        self._full = False
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
            self._full = False

    def exhausted(self) -> bool:
        """Whether the period's spend has reached the limit, or a paid call found no room in
        what is left (a hard cap is rarely hit to the cent); rolls the period first."""
        self.roll()
        return self.spent >= self.limit or self._full

    def mark_full(self) -> None:
        """A paid call did not fit while no other call held a reservation: what is left pays
        for no call, so the period counts as exhausted (until it rolls over)."""
        if self._in_flight == 0:
            self._full = True

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.spent)

    @property
    def available(self) -> float:
        """What is left beside spend and the reservations of attempts in flight."""
        return self.limit - self.spent - self.reserved

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

    def charge_in(self, cost: float, period_start: str | None) -> None:
        """Charge a cost spent in the period that began at ``period_start`` (ISO time, None
        for ``total``): counted only if that period is still the current one."""
        self.roll()
        if period_start == self.period_start_text:
            self.spent += cost

    @property
    def period_start_text(self) -> str | None:
        """The current period's start as stored in checkpoints and journals."""
        return self.period_start.isoformat() if self.period_start else None

    def error(self, why: str | None = None) -> BudgetExhausted:
        if why is None:
            why = "is spent" if self.spent >= self.limit else "has no room left for a call"
        return BudgetExhausted(
            f"budget of ${self.limit:g} per {self.period.value} period {why} "
            f"(${self.spent:.6f} spent); raise spec.budget.limit"
            + ("" if self.period is BudgetPeriod.TOTAL else " or wait for the next period"),
            period=self.period.value,
            spent=self.spent,
            limit=self.limit,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "period": self.period.value,
            "onExhausted": self.on_exhausted.value,
            "periodStart": self.period_start_text,
            "spent": self.spent,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back a checkpoint's spend if it belongs to the current period, replacing
        what was counted so far.

        Spend of an earlier day or month, or of a different period kind (the spec changed),
        does not count against the current period.
        """
        self.roll()
        self.spent = 0.0
        spent = data.get("spent")
        if (
            isinstance(spent, bool)
            or not isinstance(spent, (int, float))
            or not (math.isfinite(spent) and spent >= 0)
        ):
            raise ValueError(f"budget spend {spent!r} is not a finite amount of at least 0")
        if data.get("period") == self.period.value and data.get("periodStart") == (
            self.period_start_text
        ):
            self.spent = float(spent)


def output_limit(*, available: float, input_cost: float, output_price: float, wanted: int) -> int:
    """The largest output limit, at most ``wanted``, whose worst case fits in ``available``.

    ``output_price`` is US dollars per output token; 0 when not even the input fits.
    """
    room = available - input_cost
    if room <= 0:
        return 0
    if output_price <= 0:
        return wanted
    return min(wanted, math.floor(room / output_price))
