"""Status of a ProviderPool: what the operator folds from the pool's agents and its prices.

The operator alone writes it: per provider, the agents' views summed (``operator.pool_status``)
and the price it resolves from the spec (``llmagents.pricing``); conditions ``Ready``,
``ProvidersHealthy`` and ``PriceUnknown``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from llmagents.api.base import ApiModel, list_map
from llmagents.api.status import MAX_CONDITIONS, MAX_PROVIDERS, Condition, ProviderPrice


class PoolProviderStatus(ApiModel):
    """One provider of a pool, folded from the agents that use it."""

    name: str = Field(max_length=63, description="Name of the provider.")
    healthy: bool = Field(description="Whether most agents reporting it see it healthy.")
    agents: int = Field(default=0, ge=0, description="Agents reporting this provider.")
    agents_healthy: int = Field(default=0, ge=0, description="Of those, agents seeing it healthy.")
    open_breakers: int = Field(default=0, ge=0, description="Agents whose breaker for it is open.")
    open_since: datetime | None = Field(
        default=None,
        description="Since when it has been open for the agents that see it open (the "
        "earliest of their openings); unset when no agent does.",
    )
    cost_usd: float | None = Field(
        default=None,
        ge=0,
        alias="costUSD",
        description="USD its calls cost, summed over the reporting agents' lives.",
    )
    success_rate: float | None = Field(
        default=None, ge=0, le=1, description="Mean success rate over the reporting agents."
    )
    latency_p95_ms: float | None = Field(
        default=None, ge=0, description="Worst p95 latency over the reporting agents, in ms."
    )
    last_seen: datetime | None = Field(
        default=None, description="Latest successful call by any agent."
    )
    price: ProviderPrice | None = Field(
        default=None,
        description="What its calls are charged at and where that comes from (the pool's "
        "pricing, the price table, or unknown), as the operator resolves it from the spec.",
    )


class ProviderPoolStatus(ApiModel):
    """Observed state of a ProviderPool, folded by the operator from its agents."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the operator last acted on."
    )
    agents: int | None = Field(default=None, ge=0, description="Agents using the pool.")
    provider_count: int | None = Field(default=None, ge=0, description="Providers in the pool.")
    healthy: str | None = Field(default=None, description="Providers healthy out of all, like 2/3.")
    open_breakers: int | None = Field(
        default=None, ge=0, description="Open breakers summed over agents and providers."
    )
    providers: Annotated[list[PoolProviderStatus], Field(max_length=MAX_PROVIDERS)] | None = Field(
        default=None,
        description="Per provider health folded from the agents.",
        json_schema_extra=list_map("name"),
    )
    conditions: Annotated[list[Condition], Field(max_length=MAX_CONDITIONS)] | None = Field(
        default=None,
        description="Ready, ProvidersHealthy and PriceUnknown.",
        json_schema_extra=list_map("type"),
    )
