"""ProviderPool: the providers an agent may call and how the engine chooses among them.

These models are both the CRD schema of ``ProviderPool.spec`` and the engine's configuration:
the runner receives the pool spec rendered into its ConfigMap and builds the engine from it,
so one model states every default and bound once. The parts live beside it: each provider in
``provider``, breaker, retry and health settings in ``resilience``; this module re-exports
them as the pool's public API.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from llmagents.api.base import ApiModel, Duration, cel, list_map
from llmagents.api.provider import (
    DNS_LABEL,
    INSECURE_BASE_URL_MESSAGE,
    LOOPBACK_URL,
    Capabilities,
    EmbeddingsSpec,
    Pricing,
    ProviderSpec,
    ProviderType,
    SecretKeyRef,
    Tier,
    secure_or_loopback,
)
from llmagents.api.resilience import (
    BackoffKind,
    CircuitBreakerSpec,
    FailureRateWindow,
    HealthSpec,
    RetryByKind,
    RetrySpec,
)

__all__ = [
    "DNS_LABEL",
    "INSECURE_BASE_URL_MESSAGE",
    "LOOPBACK_URL",
    "BackoffKind",
    "Capabilities",
    "CircuitBreakerSpec",
    "EmbeddingsSpec",
    "FailureRateWindow",
    "HealthSpec",
    "Pricing",
    "ProviderPoolSpec",
    "ProviderSpec",
    "ProviderType",
    "RetryByKind",
    "RetrySpec",
    "SecretKeyRef",
    "Strategy",
    "Tier",
    "TracingSpec",
    "secure_or_loopback",
]


class Strategy(StrEnum):
    """How the engine orders healthy providers for a call."""

    PRIORITY = "priority"
    """Lowest ``priority`` number first."""
    COST_OPTIMIZED = "cost-optimized"
    """Lowest expected cost for the task's estimated tokens first."""
    PERFORMANCE_OPTIMIZED = "performance-optimized"
    """Best recent latency and success rate first."""
    ROUND_ROBIN = "round-robin"
    """Spread calls evenly over healthy providers."""


class TracingSpec(ApiModel):
    """What the runner's OpenTelemetry traces may hold (traces are on when the runner's
    OTEL_EXPORTER_OTLP_ENDPOINT is set)."""

    capture_prompt_content: bool = Field(
        default=False,
        description=(
            "Put the prompts and answers in the spans (gen_ai.input.messages and "
            "gen_ai.output.messages). Off by default: they may hold personal or secret data."
        ),
    )


class ProviderPoolSpec(ApiModel):
    """Desired state of a ProviderPool: its providers and how calls are routed among them."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.providers.all(p, self.providers.exists_one(q, q.name == p.name))",
                "provider names must be unique within the pool",
            ),
            (
                "duration(self.callDeadline) > duration('0s')",
                "callDeadline must be greater than zero, like '120s'",
            ),
            (
                "!has(self.defaultModel) || self.providers.exists(p, p.name == self.defaultModel)"
                " || (has(self.models) && self.defaultModel in self.models)",
                "defaultModel must name a provider of the pool or an alias in models",
            ),
        )
    )

    providers: Annotated[list[ProviderSpec], Field(min_length=1, max_length=32)] = Field(
        description="The providers, at least one; names must be unique.",
        json_schema_extra=list_map("name"),
    )
    strategy: Strategy = Field(
        default=Strategy.PRIORITY, description="How healthy providers are ordered for a call."
    )
    circuit_breaker: CircuitBreakerSpec = Field(
        default_factory=CircuitBreakerSpec, description="Per-provider circuit breaker."
    )
    retry: RetrySpec = Field(default_factory=RetrySpec, description="Backoff between retries.")
    health: HealthSpec = Field(default_factory=HealthSpec, description="Health measurement.")
    call_deadline: Duration = Field(
        default=timedelta(seconds=120),
        description=(
            "Bound on one call's retries and fallbacks together; a provider whose timeout "
            "cannot fit in what is left is skipped."
        ),
    )
    tracing: TracingSpec | None = Field(
        default=None, description="What the runner's OpenTelemetry spans may contain."
    )
    # That aliases name providers of the pool is checked by the model, not by a CEL rule:
    # the API server estimates such a rule (aliases × members × providers) far over budget.
    models: dict[str, Annotated[list[str], Field(min_length=1, max_length=32)]] | None = Field(
        default=None,
        max_length=64,
        description=(
            "Names a gateway client may send as its request's model, each standing for the "
            "providers listed (by name), e.g. smart: [claude, gpt]. The pool's strategy "
            "orders them."
        ),
    )
    default_model: str | None = Field(
        default=None,
        max_length=256,
        description=(
            "What a gateway request whose model names nothing in the pool may use: an alias "
            "of models or a provider name. Unset: every provider of the pool."
        ),
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ProviderPoolSpec:
        seen: set[str] = set()
        for provider in self.providers:
            if provider.name in seen:
                raise ValueError(f"providers: duplicate provider name {provider.name!r}")
            seen.add(provider.name)
        return self

    @model_validator(mode="after")
    def _remote_needs_secret(self) -> ProviderPoolSpec:
        for provider in self.providers:
            if provider.type is not ProviderType.ONNX and provider.secret_ref is None:
                raise ValueError(
                    f"providers: {provider.name!r} of type {provider.type.value} needs a secretRef"
                )
        return self

    @model_validator(mode="after")
    def _aliases_name_providers(self) -> ProviderPoolSpec:
        names = {p.name for p in self.providers}
        for alias, members in (self.models or {}).items():
            unknown = [m for m in members if m not in names]
            if unknown:
                raise ValueError(
                    f"models: alias {alias!r} names {', '.join(map(repr, unknown))}, which "
                    "are not providers of the pool"
                )
        default = self.default_model
        if default is not None and default not in names and default not in (self.models or {}):
            raise ValueError(
                f"defaultModel: {default!r} is neither a provider of the pool nor an alias "
                "in models"
            )
        return self

    def provider(self, name: str) -> ProviderSpec:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)
