"""``PoolState``: the engine's state of one agent's pool, and what is read and kept of it.

Each provider's breaker, health window and price (``ProviderState``), the cost ledger and
the budget live here, with what the runner does to them besides calls: charging and
replaying spend, fleet-opened breakers, active probes, the status report, and checkpoints
(``snapshot``). ``ProviderManager`` (``manager``) adds the calls themselves.

Synchronous bookkeeping on one event loop, like the rest of the engine: no locks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec
from llmagents.api.work import BudgetSpec
from llmagents.chat import Capability, Usage
from llmagents.errors import ProviderError
from llmagents.routing import clock as clocks
from llmagents.routing.breaker import BreakerState, CircuitBreaker, Transition
from llmagents.routing.budget import Budget
from llmagents.routing.costs import CostLedger, Price, Spend, spec_price
from llmagents.routing.health import Health
from llmagents.routing.listener import EngineListener
from llmagents.routing.snapshot import (
    ProviderReport,
    provider_status,
    restore_state,
    snapshot_state,
)
from llmagents.routing.state import ProviderState

Defer = Callable[[Callable[[], object]], None]
"""Runs a piece of bookkeeping later (or at once): see ``PoolState``'s ``defer``."""


class PoolState:
    """The providers of one agent's pool as the engine knows them, with spend and budget."""

    def __init__(
        self,
        pool: ProviderPoolSpec,
        *,
        budget: BudgetSpec | None = None,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
        listener: EngineListener | None = None,
        agent: str = "",
        prices: Mapping[str, Price | None] | None = None,
        defer: Defer | None = None,
    ) -> None:
        """``prices`` (by provider name) replaces what the spec alone says (``spec_price``):
        the runner passes prices resolved from its price table. ``defer`` runs bookkeeping
        that an answer does not wait for (a closed breaker's success and its health
        sample) after the answer went out: the runner's ``Later``; None runs it at once."""
        self.pool = pool
        self._defer = defer
        self._clock = clock
        self._wall_clock = wall_clock
        self._listener = listener
        self._agent = agent or "-"
        interval = pool.health.probe_interval
        self._probe_interval = interval.total_seconds() if interval is not None else None
        on_transition = self._transitioned if listener is not None else None
        window = pool.health.window.total_seconds()
        self._states: dict[str, ProviderState] = {}
        for index, spec in enumerate(pool.providers):
            breaker = CircuitBreaker(
                spec.name, pool.circuit_breaker, wall_clock=wall_clock, on_transition=on_transition
            )
            price = prices[spec.name] if prices and spec.name in prices else spec_price(spec)
            self._states[spec.name] = ProviderState(
                spec,
                index=index,
                breaker=breaker,
                health=Health(window),
                price=price,
                agent=self._agent,
            )
        self._ledger = CostLedger()
        self.budget = Budget(budget, wall_clock=wall_clock) if budget is not None else None
        self.current_provider: str | None = None
        """The provider that answered the latest call."""

    # -- spend ---------------------------------------------------------------------------

    def _charge(self, spec: ProviderSpec, usage: Usage, price: Price | None = None) -> float:
        if price is None:
            price = self._states[spec.name].price
        cost = self._ledger.add(spec.name, usage, price)
        if self.budget is not None:
            self.budget.charge(cost)
        if self._listener is not None:
            self._listener.on_cost(spec.name, usage, cost)
        return cost

    def replay_charge(
        self, provider: str, usage: Usage, cost: float, *, period_start: str | None
    ) -> None:
        """Count again a charge made before a restart that the restored checkpoint lacks
        (the runner's spend journal): its recorded cost goes to the ledger, and to the
        budget if it was spent in the current period. No listener hears it: it is not new."""
        self._ledger.add_charged(provider, usage, cost)
        if self.budget is not None:
            self.budget.charge_in(cost, period_start)

    # -- fleet view, probes, status and checkpoints -------------------------------------------

    def force_open(self, provider: str, *, reason: str, until: datetime) -> None:
        """Open a provider's breaker until the wall time ``until`` (another agent saw it fail)."""
        now = self._clock()
        until_mono = clocks.to_monotonic(until, now=now, wall_now=self._wall_clock())
        self._states[provider].breaker.force_open(now, until_mono, reason)

    def due_probes(self, now: float | None = None) -> list[ProviderSpec]:
        """Providers whose last call or probe is older than ``health.probeInterval``.

        Paid providers only when ``health.probePaidProviders`` is set; none without an interval.
        """
        interval = self._probe_interval
        if interval is None:
            return []
        now = self._clock() if now is None else now
        paid = self.pool.health.probe_paid_providers
        return [
            state.spec
            for state in self._states.values()
            if (state.free or paid) and state.probe_due(now, interval)
        ]

    def record_probe(
        self, provider: str, *, ok: bool, latency: float, error: ProviderError | None = None
    ) -> None:
        """Take an active probe's outcome: health, breaker and misconfiguration mark."""
        self._states[provider].probed(self._clock(), ok=ok, latency=latency, error=error)

    @property
    def spend(self) -> Spend:
        """Tokens and cost of every call since the agent started."""
        return self._ledger.total

    @property
    def spend_by_provider(self) -> dict[str, Spend]:
        return self._ledger.by_provider

    def open_until(self, provider: str) -> datetime | None:
        """Wall time until which an open breaker refuses calls (None unless open); unlike
        ``status`` it moves no breaker, so a transition listener may call it."""
        breaker = self._states[provider].breaker
        if breaker.state is not BreakerState.OPEN:
            return None
        return clocks.to_wall(breaker.open_until, now=self._clock(), wall_now=self._wall_clock())

    def price(self, provider: str) -> Price | None:
        """The prices a provider is charged at; None when unknown."""
        return self._states[provider].price

    def transitions(self, provider: str) -> list[Transition]:
        """A provider's recent breaker transitions, oldest first."""
        return list(self._states[provider].breaker.transitions)

    def status(self) -> dict[str, ProviderReport]:
        """Per provider, in pool order: health at a glance."""
        now, wall_now = self._clock(), self._wall_clock()
        return {
            name: provider_status(state, now=now, wall_now=wall_now)
            for name, state in self._states.items()
        }

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as JSON-ready data, for checkpoints and status."""
        return snapshot_state(
            self._states,
            ledger=self._ledger,
            budget=self.budget,
            current_provider=self.current_provider,
            now=self._clock(),
            wall_now=self._wall_clock(),
        )

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Take back a checkpoint: spend exactly, breakers as they would be by now."""
        self.current_provider = restore_state(
            snapshot,
            self._states,
            ledger=self._ledger,
            budget=self.budget,
            now=self._clock(),
            wall_now=self._wall_clock(),
        )

    def capabilities(self, provider: str) -> frozenset[Capability]:
        """What a provider can do (its spec's capabilities over the defaults)."""
        return self._states[provider].capabilities

    def _transitioned(self, provider: str, transition: Transition) -> None:
        if self._listener is not None:
            self._listener.on_breaker_transition(provider, transition)
