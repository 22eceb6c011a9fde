"""Status of both resources, and who writes which part of it.

Two processes write ``LLMAgent.status``: the runner (what it observes: providers, cost,
tokens, tasks, checkpoints) and the operator (its verdict: phase, conditions). Each applies
only its own fields by server-side apply on the status subresource under its own field
manager, so neither can clobber the other. ``RunnerAgentStatus`` and ``OperatorAgentStatus``
are those two halves; ``LLMAgentStatus`` is their union and the CRD schema.

The printer columns read runner fields directly where JSONPath allows; what it cannot
compute (``healthy`` "2/3", ``tasks.summary`` "5/10", ``cost.display`` "$0.42") is derived
inside the runner's half by validators, so it is written in the same patch as the numbers
it summarises.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from llmagents.api.base import ApiModel, list_map
from llmagents.api.work import BudgetPeriod

GROUP = "llmagents.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

OPERATOR_FIELD_MANAGER = "llmagents-operator"
"""Field manager of everything the operator applies, status included."""
RUNNER_FIELD_MANAGER = "llmagents-runner"
"""Field manager of the runner's status and checkpoint writes."""

MAX_PROVIDERS = 32
MAX_CONDITIONS = 16


class ConditionStatus(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the resource's state, in Kubernetes' standard condition shape."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of the condition in CamelCase, like Ready.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Why the condition has its status, in CamelCase.",
    )
    message: str = Field(default="", max_length=32_768, description="Details for humans.")
    last_transition_time: datetime = Field(
        description="When the status last changed; unchanged while the status stays."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set from."
    )


class Phase(StrEnum):
    """The agent's state at a glance; the conditions carry the details."""

    PENDING = "Pending"
    """Waiting for its pool, a Secret or the runner's first report."""
    RUNNING = "Running"
    """Working, with every provider healthy."""
    DEGRADED = "Degraded"
    """Working, but some providers are unhealthy or misconfigured."""
    BUDGET_EXHAUSTED = "BudgetExhausted"
    """Spent its budget with onExhausted=stop; scaled to zero."""
    COMPLETED = "Completed"
    """Finished its tasks, reported itself done (gateway agent) or reached maxRuntime;
    scaled to zero."""
    SUSPENDED = "Suspended"
    """spec.suspend is true; scaled to zero."""
    FAILED = "Failed"
    """The runner reported an error it cannot recover from."""


class BreakerState(StrEnum):
    """State of a provider's circuit breaker."""

    CLOSED = "closed"
    """Calls flow."""
    OPEN = "open"
    """Calls are skipped until the recovery time passes."""
    HALF_OPEN = "half-open"
    """A few probe calls test whether the provider recovered."""


class RunnerPhase(StrEnum):
    """What the runner process says it is doing."""

    STARTING = "Starting"
    """Loading configuration and checkpoint."""
    RUNNING = "Running"
    """Working through tasks or serving the gateway."""
    COMPLETED = "Completed"
    """Every task reached an end (done or failed), or the gateway agent reported itself
    done; the runner takes no more calls."""
    FAILED = "Failed"
    """Stopped on an error it cannot recover from; see message."""


class ProviderPrice(ApiModel):
    """The prices a provider is charged at, in USD per million tokens, and their source."""

    source: str = Field(
        max_length=128,
        description=(
            "Where the prices come from: spec (the pool's pricing), local (the free ONNX "
            "model), genai-prices <version> (the price table), or unknown."
        ),
    )
    model: str | None = Field(
        default=None, max_length=512, description="The table's provider/model the prices are of."
    )
    input_per_million: float | None = Field(default=None, ge=0, description="Input tokens.")
    output_per_million: float | None = Field(default=None, ge=0, description="Output tokens.")
    cached_input_per_million: float | None = Field(
        default=None, ge=0, description="Input tokens served from the prompt cache."
    )
    reasoning_per_million: float | None = Field(
        default=None, ge=0, description="Hidden reasoning tokens."
    )
    cache_write_input_per_million: float | None = Field(
        default=None, ge=0, description="Input tokens written to the prompt cache."
    )
    tiered_above_tokens: int | None = Field(
        default=None,
        ge=0,
        description="Input size above which a call is charged the table's higher tier prices.",
    )


class ProviderFailure(ApiModel):
    """A provider's most recent failed call."""

    at: datetime = Field(description="When it failed.")
    reason: str = Field(
        max_length=1024, description="The error kind and the provider's message, never a key."
    )


class ProviderStatus(ApiModel):
    """One provider as the agent's engine sees it."""

    name: str = Field(max_length=63, description="Name of the provider in the pool.")
    healthy: bool = Field(description="Whether calls may go to the provider now.")
    breaker_state: BreakerState = Field(
        default=BreakerState.CLOSED, description="State of its circuit breaker."
    )
    open_since: datetime | None = Field(
        default=None,
        description="When the breaker opened, kept while it stays open or half-open; unset "
        "while closed.",
    )
    open_until: datetime | None = Field(
        default=None, description="When an open breaker admits probe calls again."
    )
    breaker_reason: str | None = Field(
        default=None,
        max_length=1024,
        description="Why the breaker last opened (failures in a row, failure rate, a failed "
        "probe, the fleet's view); unset while closed.",
    )
    calls: int | None = Field(
        default=None,
        ge=0,
        description="Calls and probes in the health window, which the "
        "rates and latencies below cover.",
    )
    success_rate: float | None = Field(
        default=None, ge=0, le=1, description="Share of successful calls in the health window."
    )
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Share of failed calls in the health window."
    )
    latency_mean_ms: float | None = Field(
        default=None,
        ge=0,
        description="Mean latency of successful calls in the health window, in ms.",
    )
    latency_p95_ms: float | None = Field(
        default=None, ge=0, description="95th percentile latency in the health window, in ms."
    )
    cost_usd: float | None = Field(
        default=None,
        ge=0,
        alias="costUSD",
        description="USD charged for its calls over the agent's life.",
    )
    misconfigured: str | None = Field(
        default=None,
        max_length=1024,
        description="Why the provider is skipped for good (bad key, unknown model); unset if not.",
    )
    last_success: datetime | None = Field(default=None, description="Last successful call.")
    last_failure: ProviderFailure | None = Field(
        default=None, description="Last failed call and why."
    )
    price: ProviderPrice | None = Field(
        default=None, description="What the provider is charged at, and where that comes from."
    )


def format_usd(amount: float) -> str:
    """Dollars as a person reads them: ``$12.35``, ``$0.42``, ``$0.000013`` (two significant
    digits below a cent; kubectl would print the bare number as ``1.29e-05``)."""
    if amount <= 0:
        return "$0"
    digits = 1 - math.floor(math.log10(amount))
    if round(amount, digits) >= 0.01:
        return f"${amount:,.2f}"
    return f"${amount:.{digits}f}".rstrip("0")


class CostStatus(ApiModel):
    """Money spent, from the providers' reported usage and the pool's prices."""

    spent_usd: float = Field(
        default=0.0, ge=0, alias="spentUSD", description="USD spent in the current budget period."
    )
    total_usd: float = Field(
        default=0.0, ge=0, alias="totalUSD", description="USD spent over the agent's life."
    )
    limit_usd: float | None = Field(
        default=None,
        ge=0,
        alias="limitUSD",
        description=(
            "The budget limit the runner enforced when it reported; a spec limit above it"
            " means the user raised the limit since."
        ),
    )
    period: BudgetPeriod | None = Field(default=None, description="The budget period counted.")
    period_start: datetime | None = Field(
        default=None, description="Start of the current budget period."
    )
    display: str = Field(
        default="", max_length=32, description="spentUSD for kubectl get: $0.42, $0.000013."
    )

    @model_validator(mode="after")
    def _format(self) -> CostStatus:
        self.display = format_usd(self.spent_usd)
        return self


class TokenStatus(ApiModel):
    """Tokens consumed over the agent's life, as the providers reported them."""

    input: int = Field(default=0, ge=0, description="Prompt tokens.")
    output: int = Field(default=0, ge=0, description="Completion tokens.")
    cached_input: int | None = Field(
        default=None, ge=0, description="Of the prompt tokens, those served from a prompt cache."
    )
    reasoning: int | None = Field(
        default=None, ge=0, description="Of the completion tokens, hidden reasoning tokens."
    )


class TaskProgress(ApiModel):
    """Progress through the task list."""

    done: int = Field(default=0, ge=0, description="Tasks that completed.")
    failed: int = Field(default=0, ge=0, description="Tasks that failed for good.")
    total: int = Field(default=0, ge=0, description="Tasks in the list.")
    summary: str = Field(default="", description="done/total, for kubectl get.")

    @model_validator(mode="after")
    def _summarise(self) -> TaskProgress:
        self.summary = f"{self.done}/{self.total}"
        return self

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.done + self.failed >= self.total


MAX_COMPLETION_SUMMARY = 1024
"""Characters of the summary a gateway agent may report with its completion."""


class AgentCompletion(ApiModel):
    """A gateway agent's report that its work is done (``POST /v1/agent/complete``)."""

    completed_at: datetime = Field(description="When the runner recorded the completion.")
    summary: str | None = Field(
        default=None,
        max_length=MAX_COMPLETION_SUMMARY,
        description="What the agent said about its result, if anything.",
    )
    agent_digest: str = Field(
        max_length=64,
        description=(
            "Digest of the agent container's spec the completion was reported under; a "
            "changed container (another digest) starts the agent again."
        ),
    )


class RunnerAgentStatus(ApiModel):
    """The part of an LLMAgent's status the runner writes (field manager llmagents-runner)."""

    runner_phase: RunnerPhase | None = Field(default=None, description="The runner's own state.")
    message: str | None = Field(
        default=None, max_length=4096, description="The runner's latest notable event or error."
    )
    started_at: datetime | None = Field(
        default=None, description="When the runner first started; maxRuntime counts from here."
    )
    current_provider: str | None = Field(
        default=None, max_length=63, description="Provider that served the latest call."
    )
    providers: Annotated[list[ProviderStatus], Field(max_length=MAX_PROVIDERS)] | None = Field(
        default=None,
        description="Every provider of the pool as the engine sees it.",
        json_schema_extra=list_map("name"),
    )
    healthy: str | None = Field(
        default=None, description="Healthy providers out of all, like 2/3; derived from providers."
    )
    cost: CostStatus | None = Field(default=None, description="Money spent.")
    tokens: TokenStatus | None = Field(default=None, description="Tokens consumed.")
    tasks: TaskProgress | None = Field(default=None, description="Task list progress.")
    last_checkpoint: datetime | None = Field(
        default=None, description="When progress was last saved to the checkpoint ConfigMap."
    )
    budget_exhausted: bool | None = Field(
        default=None, description="Whether the current period's budget is spent."
    )
    completion: AgentCompletion | None = Field(
        default=None,
        description="Set once a gateway agent reported its work done; the operator then "
        "completes the agent and scales its runner to zero.",
    )

    @model_validator(mode="after")
    def _summarise(self) -> RunnerAgentStatus:
        if self.providers is not None:
            up = sum(1 for p in self.providers if p.healthy)
            self.healthy = f"{up}/{len(self.providers)}"
        return self


class OperatorAgentStatus(ApiModel):
    """The part of an LLMAgent's status the operator writes (field manager llmagents-operator)."""

    phase: Phase | None = Field(default=None, description="The agent's state at a glance.")
    conditions: Annotated[list[Condition], Field(max_length=MAX_CONDITIONS)] | None = Field(
        default=None,
        description="Ready, PoolResolved, ProvidersHealthy, BudgetAvailable and PriceUnknown (the operator's); CheckpointTooLarge and others the runner sets.",
        json_schema_extra=list_map("type"),
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the operator last acted on."
    )
    strategy: str | None = Field(
        default=None, description="The strategy in effect: the agent's override or the pool's."
    )


class LLMAgentStatus(OperatorAgentStatus, RunnerAgentStatus):
    """Observed state of an LLMAgent, written by its runner and the operator."""


def status_apply_body(*, kind: str, name: str, namespace: str, status: ApiModel) -> dict[str, Any]:
    """The body of a server-side apply to a resource's status subresource.

    Only the fields set in ``status`` are claimed by the applying field manager; a field it
    claimed before and leaves out now is removed, so each writer always sends its whole half.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "status": status.to_wire(),
    }
