"""ProviderPool status, folded from what the runners of the pool's agents report.

Each runner writes its own view of every provider (healthy, breaker, success rate,
latency, last success) to its LLMAgent's status; the pool's status is the sum of those
views. A provider counts as healthy in the pool when most agents that report it see it
healthy; one no agent reports yet is not counted healthy. Pure: the reconciler passes
the agents' statuses and the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.pool_status import PoolProviderStatus, ProviderPoolStatus
from llmagents.api.status import (
    BreakerState,
    Condition,
    ConditionStatus,
    ProviderStatus,
)
from llmagents.operator.phase import CondSpec, conditions
from llmagents.operator.prices import price_condition, unknown_prices
from llmagents.pricing import KnownPrice


def fold_providers(
    spec: ProviderPoolSpec, reports: Iterable[list[ProviderStatus] | None]
) -> list[PoolProviderStatus]:
    """One entry per provider of the pool, in the pool's order."""
    seen: dict[str, list[ProviderStatus]] = {p.name: [] for p in spec.providers}
    for report in reports:
        for entry in report or []:
            if entry.name in seen:
                seen[entry.name].append(entry)
    out = []
    for name, entries in seen.items():
        healthy = sum(1 for e in entries if e.healthy)
        rates = [e.success_rate for e in entries if e.success_rate is not None]
        latencies = [e.latency_p95_ms for e in entries if e.latency_p95_ms is not None]
        successes = [e.last_success for e in entries if e.last_success is not None]
        open_since = [
            e.open_since
            for e in entries
            if e.breaker_state is BreakerState.OPEN and e.open_since is not None
        ]
        costs = [e.cost_usd for e in entries if e.cost_usd is not None]
        out.append(
            PoolProviderStatus(
                name=name,
                healthy=bool(entries) and healthy * 2 > len(entries),
                agents=len(entries),
                agents_healthy=healthy,
                open_breakers=sum(1 for e in entries if e.breaker_state is BreakerState.OPEN),
                success_rate=round(sum(rates) / len(rates), 4) if rates else None,
                latency_p95_ms=max(latencies) if latencies else None,
                last_seen=max(successes) if successes else None,
                open_since=min(open_since) if open_since else None,
                cost_usd=round(sum(costs), 6) if costs else None,
            )
        )
    return out


def providers_report(agent: Mapping[str, Any] | None) -> list[ProviderStatus] | None:
    """What an agent's runner reports of its providers (from the agent's body); None when
    it has not reported or the report does not parse."""
    raw = ((agent or {}).get("status") or {}).get("providers")
    if not raw:
        return None
    try:
        return [ProviderStatus.model_validate(p) for p in raw]
    except ValidationError:
        return None


def pool_status(
    spec: ProviderPoolSpec | None,
    error: str | None,
    *,
    generation: int,
    agents: int,
    reports: Iterable[list[ProviderStatus] | None],
    previous: list[Condition] | None,
    now: datetime,
    prices: Mapping[str, KnownPrice] | None = None,
) -> ProviderPoolStatus:
    """The whole status the operator applies to a pool; ``prices`` (each provider's, as
    resolved from the spec) adds them per provider and the ``PriceUnknown`` condition."""
    if spec is None:
        wanted = [CondSpec("Ready", ConditionStatus.FALSE, "InvalidSpec", error or "")]
        return ProviderPoolStatus(
            observed_generation=generation,
            agents=agents,
            conditions=conditions(wanted, previous, generation=generation, now=now),
        )
    providers = fold_providers(spec, reports)
    up = sum(1 for p in providers if p.healthy)
    reported = any(p.agents for p in providers)
    sick = sorted(p.name for p in providers if p.agents and not p.healthy)
    if not reported:
        health = CondSpec(
            "ProvidersHealthy", ConditionStatus.UNKNOWN, "NoReports", "no agent has reported yet"
        )
    elif sick:
        health = CondSpec(
            "ProvidersHealthy",
            ConditionStatus.FALSE,
            "ProvidersUnhealthy",
            "unhealthy: " + ", ".join(sick),
        )
    else:
        health = CondSpec("ProvidersHealthy", ConditionStatus.TRUE, "AllHealthy")
    wanted = [CondSpec("Ready", ConditionStatus.TRUE, "Accepted"), health]
    if prices is not None:
        for provider in providers:
            known = prices.get(provider.name)
            provider.price = known.to_status() if known is not None else None
        wanted.append(price_condition(unknown_prices(prices), budget=None))
    return ProviderPoolStatus(
        observed_generation=generation,
        agents=agents,
        provider_count=len(providers),
        healthy=f"{up}/{len(providers)}",
        open_breakers=sum(p.open_breakers for p in providers),
        providers=providers,
        conditions=conditions(wanted, previous, generation=generation, now=now),
    )
