"""The engine's state for people and for checkpoints.

``status`` is the glance the runner writes to the agent's status: per provider whether it is
healthy, its breaker state, success rate, p95 latency and misconfiguration. ``snapshot`` is
JSON-ready data with every time as UTC wall time (monotonic readings mean nothing to another
process); the runner stores it in its checkpoint and ``restore`` takes it back after a
restart. Spend is restored exactly. Breakers come back as they would stand by now: an open
breaker stays open until its wall time, a half-open one is open until now, so that the next
call probes it. Health samples and misconfiguration marks are not restored: they describe the
previous process's connections and configuration, and a restart is the moment to re-check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmagents.errors import ConfigError
from llmagents.routing.breaker import BreakerState, Transition
from llmagents.routing.budget import Budget
from llmagents.routing.clock import to_monotonic, to_wall
from llmagents.routing.costs import CostLedger
from llmagents.routing.state import ProviderState

SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """One provider at a glance; healthy means breaker closed and not misconfigured.

    The rates and latencies cover the health window; ``open_since`` and ``breaker_reason``
    describe the current outage (None while closed); ``last_success`` and ``last_failure``
    are when the latest call (or active probe) succeeded and failed, ``last_error`` the
    failure's kind and message.
    """

    name: str
    healthy: bool
    breaker: BreakerState
    open_until: datetime | None
    success_rate: float | None
    p95_latency: float | None
    misconfigured: str | None
    open_since: datetime | None = None
    breaker_reason: str | None = None
    calls: int = 0
    error_rate: float | None = None
    mean_latency: float | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    last_success: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "healthy": self.healthy,
            "breaker": self.breaker.value,
            "openUntil": self.open_until.isoformat() if self.open_until else None,
            "successRate": self.success_rate,
            "p95Latency": self.p95_latency,
            "misconfigured": self.misconfigured,
        }


def provider_status(state: ProviderState, *, now: float, wall_now: datetime) -> ProviderReport:
    breaker_state = state.breaker.refresh(now)
    stats = state.health.stats(now, wall_now)
    outage = state.breaker.outage()
    return ProviderReport(
        name=state.name,
        healthy=breaker_state is BreakerState.CLOSED and state.misconfigured is None,
        breaker=breaker_state,
        open_until=_open_until(state, now, wall_now),
        success_rate=stats.success_rate,
        p95_latency=stats.p95_latency,
        misconfigured=state.misconfigured,
        open_since=outage[0] if outage else None,
        breaker_reason=outage[1] if outage else None,
        calls=stats.calls,
        error_rate=stats.error_rate,
        mean_latency=stats.mean_latency,
        last_failure=stats.last_failure,
        last_error=state.last_error,
        last_success=stats.last_success,
    )


def _open_until(state: ProviderState, now: float, wall_now: datetime) -> datetime | None:
    if state.breaker.state is not BreakerState.OPEN:
        return None
    return to_wall(state.breaker.open_until, now=now, wall_now=wall_now)


def snapshot_state(
    states: Mapping[str, ProviderState],
    *,
    ledger: CostLedger,
    budget: Budget | None,
    current_provider: str | None,
    now: float,
    wall_now: datetime,
) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for name, state in states.items():
        breaker = state.breaker
        until = _open_until(state, now, wall_now)
        providers[name] = {
            "breaker": {
                "state": breaker.refresh(now).value,
                "openUntil": until.isoformat() if until else None,
                "openings": breaker.openings,
                "consecutiveFailures": breaker.consecutive_failures,
                "transitions": [t.to_dict() for t in breaker.transitions],
            },
            "health": state.health.stats(now, wall_now).to_dict(),
            "misconfigured": state.misconfigured,
        }
    return {
        "version": SNAPSHOT_VERSION,
        "takenAt": wall_now.isoformat(),
        "currentProvider": current_provider,
        "spend": ledger.to_dict(),
        "budget": budget.to_dict() if budget is not None else None,
        "providers": providers,
    }


def restore_state(
    snapshot: Mapping[str, Any],
    states: Mapping[str, ProviderState],
    *,
    ledger: CostLedger,
    budget: Budget | None,
    now: float,
    wall_now: datetime,
) -> str | None:
    """Apply ``snapshot`` to the engine's parts; returns the current provider it names."""
    version = snapshot.get("version")
    if version != SNAPSHOT_VERSION:
        raise ConfigError(
            f"engine snapshot version {version!r} is not {SNAPSHOT_VERSION}; "
            "it was written by another llmagents version"
        )
    ledger.restore(snapshot["spend"])
    if budget is not None and snapshot.get("budget") is not None:
        budget.restore(snapshot["budget"])
    for name, saved in snapshot["providers"].items():
        state = states.get(name)
        if state is None:  # removed from the pool since; its spend is in the ledger
            continue
        saved_breaker = saved["breaker"]
        kept = BreakerState(saved_breaker["state"])
        open_until = 0.0
        if kept is BreakerState.OPEN and saved_breaker.get("openUntil"):
            until = datetime.fromisoformat(saved_breaker["openUntil"])
            open_until = to_monotonic(until, now=now, wall_now=wall_now)
        elif kept is BreakerState.HALF_OPEN:
            kept, open_until = BreakerState.OPEN, now
        state.breaker.restore(
            state=kept,
            open_until=open_until,
            openings=int(saved_breaker["openings"]),
            transitions=[Transition.from_dict(t) for t in saved_breaker["transitions"]],
        )
        health = saved.get("health") or {}

        def instant(key: str, health: Mapping[str, Any] = health) -> float | None:
            value = health.get(key)
            if not value:
                return None
            return to_monotonic(datetime.fromisoformat(value), now=now, wall_now=wall_now)

        state.health.restore(
            last_success=instant("lastSuccess"), last_failure=instant("lastFailure")
        )
    current = snapshot.get("currentProvider")
    return current if current in states else None
