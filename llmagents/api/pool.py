"""ProviderPool: the providers an agent may call and how the engine chooses among them.

These models are both the CRD schema of ``ProviderPool.spec`` and the engine's configuration:
the runner receives the pool spec rendered into its ConfigMap and builds the engine from it,
so one model states every default and bound once.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from llmagents.api.base import ApiModel, Duration, cel, list_map

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

LOOPBACK_URL = r"^http://(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]{1,5})?(/.*)?$"
"""A plain-http URL on loopback: localhost, 127.0.0.0/8 or [::1]. A regular expression
rather than CEL's url() and ip() functions, whose cost estimate over a list of providers
exceeds what the API server allows a CRD."""
_INSECURE_BASE_URL = (
    "self.type == 'onnx' || !has(self.baseURL) || self.baseURL.startsWith('https://') || "
    f"self.allowInsecureBaseURL || self.baseURL.matches(r'{LOOPBACK_URL}')"
)
INSECURE_BASE_URL_MESSAGE = (
    "baseURL must be https:// for a provider that sends an API key, or on loopback "
    "(localhost, 127.0.0.0/8, ::1); to send the key over plain http to a server you trust, "
    "set allowInsecureBaseURL: true on this provider"
)


def secure_or_loopback(url: str) -> bool:
    """Whether an API key may go to ``url`` without the pool's opt-in: https, or a
    loopback address, which never leaves the host (or the pod)."""
    return url.startswith("https://") or re.fullmatch(LOOPBACK_URL, url) is not None


class ProviderType(StrEnum):
    """The wire protocol a provider speaks."""

    ANTHROPIC = "anthropic"
    """Anthropic's Messages API."""
    GEMINI = "gemini"
    """Google's Gemini generateContent API."""
    OPENAI = "openai"
    """OpenAI-compatible chat completions: OpenAI, OpenRouter, vLLM, Ollama."""
    ONNX = "onnx"
    """The agent's local ONNX sidecar: free, always last to run out."""


class Tier(StrEnum):
    """How capable a provider's model is, for matching task complexity."""

    FAST = "fast"
    """Small, quick and cheap; preferred for simple tasks."""
    BALANCED = "balanced"
    """The everyday middle."""
    QUALITY = "quality"
    """The strongest model; preferred for complex tasks."""


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


class BackoffKind(StrEnum):
    """How the wait between retries grows."""

    EXPONENTIAL = "exponential"
    """initialDelay × multiplier^attempt, capped at maxDelay."""
    LINEAR = "linear"
    """initialDelay × (attempt + 1), capped at maxDelay."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the pool's namespace that holds a provider's API key."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(
        default="apiKey", min_length=1, max_length=253, description="Key inside the Secret."
    )


class Pricing(ApiModel):
    """What a provider charges, in US dollars per million tokens."""

    input_per_million: float = Field(
        default=0.0, ge=0, description="Price in USD per million input (prompt) tokens."
    )
    output_per_million: float = Field(
        default=0.0, ge=0, description="Price in USD per million output (completion) tokens."
    )
    cached_input_per_million: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Price in USD per million input tokens served from the provider's prompt cache; "
            "unset means inputPerMillion."
        ),
    )
    reasoning_per_million: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Price in USD per million hidden reasoning (thinking) tokens; unset means "
            "outputPerMillion, which is how providers bill them today."
        ),
    )
    cache_write_input_per_million: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Price in USD per million input tokens written to the prompt cache (Anthropic "
            "bills them at 1.25 times the input price); unset means inputPerMillion."
        ),
    )


class Capabilities(ApiModel):
    """What a provider's model can do beyond plain text chat.

    A field left unset takes the default for the provider's type and model (see
    docs/gateway.md): Anthropic, Gemini and OpenAI-compatible providers all four, except
    models known to lack one; the onnx sidecar streaming only. A request that needs a
    capability skips providers without it.
    """

    tools: bool | None = Field(
        default=None, description="Function tools: definitions, calls and results."
    )
    vision: bool | None = Field(default=None, description="Images in the input.")
    json_schema: bool | None = Field(
        default=None,
        description=(
            "Structured output: JSON for a JSON Schema or any JSON object (response_format "
            "json_schema or json_object)."
        ),
    )
    streaming: bool | None = Field(default=None, description="Answers streamed as generated.")


class EmbeddingsSpec(ApiModel):
    """The provider's embedding model, served to the gateway's ``/v1/embeddings``."""

    model: str = Field(
        min_length=1,
        max_length=256,
        description="Embedding model name sent to the provider, like text-embedding-3-small "
        "or gemini-embedding-001.",
    )
    input_per_million: float | None = Field(
        default=None,
        ge=0,
        description="Price in USD per million input tokens; when unset, taken from the "
        "genai-prices table like the chat model's prices.",
    )


class ProviderSpec(ApiModel):
    """One model endpoint the pool may call."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.embeddings) || self.type == 'openai' || self.type == 'gemini'",
                "embeddings are served by providers of type openai and gemini only",
            ),
            (
                "self.type == 'onnx' || has(self.secretRef)",
                "providers of type anthropic, gemini and openai need a secretRef naming the "
                "Secret key that holds the API key",
            ),
            (
                "duration(self.timeout) > duration('0s')",
                "timeout must be greater than zero, like '30s'",
            ),
            (_INSECURE_BASE_URL, INSECURE_BASE_URL_MESSAGE),
        )
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Name of the provider, unique in the pool; used in status, metrics and logs.",
    )
    type: ProviderType = Field(description="The wire protocol the provider speaks.")
    model: str = Field(min_length=1, max_length=256, description="Model name sent to the provider.")
    base_url: str | None = Field(
        default=None,
        alias="baseURL",
        max_length=2048,
        pattern=r"^https?://",
        description=(
            "Base URL of the API. Defaults to the provider's public endpoint; required for "
            "self-hosted OpenAI-compatible servers. The onnx type defaults to the sidecar. "
            "The API key is sent here: it must be https:// or on loopback unless "
            "allowInsecureBaseURL is set. Redirects are never followed."
        ),
    )
    allow_insecure_base_url: bool = Field(
        default=False,
        alias="allowInsecureBaseURL",
        description=(
            "Allow a plain http:// baseURL off loopback. The API key then crosses the network "
            "in clear text: only for a server you trust on a network you trust, such as an "
            "in-cluster model server."
        ),
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key. Required for every type except onnx.",
    )
    priority: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="Order under the priority strategy and tie-breaker elsewhere: lower first.",
    )
    tier: Tier = Field(default=Tier.BALANCED, description="Capability tier of the model.")
    pricing: Pricing | None = Field(
        default=None,
        description=(
            "Prices used to compute cost from real usage. When unset, the runner takes them "
            "from the genai-prices table by type, model and baseURL (onnx is free); a model "
            "the table does not know sets the PriceUnknown condition (docs/pricing.md)."
        ),
    )
    timeout: Duration = Field(
        default=timedelta(seconds=60), description="Time allowed for one attempt."
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries at this provider before falling back."
    )
    capabilities: Capabilities | None = Field(
        default=None,
        description=(
            "What the model can do beyond plain chat; unset fields take the default for the "
            "provider's type and model."
        ),
    )
    embeddings: EmbeddingsSpec | None = Field(
        default=None,
        description="An embedding model at this provider (openai and gemini types), used by "
        "the gateway's /v1/embeddings; unset: this provider serves no embeddings.",
    )

    @model_validator(mode="after")
    def _embeddings_where_offered(self) -> ProviderSpec:
        if self.embeddings is not None and self.type not in (ProviderType.OPENAI,
                                                             ProviderType.GEMINI):  # fmt: skip
            raise ValueError(f"provider {self.name!r}: embeddings are served by providers of "
                             "type openai and gemini only")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _key_goes_somewhere_safe(self) -> ProviderSpec:
        if (
            self.type is not ProviderType.ONNX
            and self.base_url is not None
            and not self.allow_insecure_base_url
            and not secure_or_loopback(self.base_url)
        ):
            raise ValueError(f"provider {self.name!r}: {INSECURE_BASE_URL_MESSAGE}")
        return self


class FailureRateWindow(ApiModel):
    """Open the breaker when too large a share of recent calls failed."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "duration(self.window) > duration('0s')",
                "failureRate.window must be greater than zero, like '60s'",
            )
        )
    )

    window: Duration = Field(
        default=timedelta(seconds=60), description="Length of the sliding window."
    )
    threshold: float = Field(
        default=0.5, gt=0, le=1, description="Failure share (0-1] at which the breaker opens."
    )
    min_calls: int = Field(
        default=10, ge=1, description="Calls needed in the window before the rate counts."
    )


class CircuitBreakerSpec(ApiModel):
    """When to stop calling a failing provider and how to test it again."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "duration(self.recoveryTime) > duration('0s')",
                "circuitBreaker.recoveryTime must be greater than zero, like '30s'",
            ),
            (
                "duration(self.maxRecoveryTime) >= duration(self.recoveryTime)",
                "circuitBreaker.maxRecoveryTime must be at least recoveryTime",
            ),
        )
    )

    max_failures: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failures that open the breaker."
    )
    recovery_time: Duration = Field(
        default=timedelta(seconds=30),
        description="How long the breaker stays open before admitting probe calls.",
    )
    recovery_multiplier: float = Field(
        default=2.0,
        ge=1,
        le=10,
        description="Growth of the open time each time the breaker reopens without recovering.",
    )
    max_recovery_time: Duration = Field(
        default=timedelta(minutes=10), description="Cap on the growing open time."
    )
    half_open_probes: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Calls admitted at once while half-open; the rest go to other providers.",
    )
    failure_rate: FailureRateWindow | None = Field(
        default=None, description="Optional failure-rate rule in addition to maxFailures."
    )

    @model_validator(mode="after")
    def _recovery_bounds(self) -> CircuitBreakerSpec:
        if self.recovery_time <= timedelta(0):
            raise ValueError("recoveryTime must be greater than zero")
        if self.max_recovery_time < self.recovery_time:
            raise ValueError("maxRecoveryTime must be at least recoveryTime")
        return self


class RetryByKind(ApiModel):
    """Retries per kind of error, overriding a provider's maxRetries for that kind."""

    rate_limited: int | None = Field(default=None, ge=0, le=20, description="On HTTP 429.")
    overloaded: int | None = Field(default=None, ge=0, le=20, description="On overload (529).")
    server_error: int | None = Field(default=None, ge=0, le=20, description="On 5xx errors.")
    timeout: int | None = Field(default=None, ge=0, le=20, description="On timeouts.")
    connection_failed: int | None = Field(
        default=None, ge=0, le=20, description="On failed or broken connections."
    )
    malformed_response: int | None = Field(
        default=None, ge=0, le=20, description="On answers that do not parse."
    )


class RetrySpec(ApiModel):
    """How to wait between retries at one provider."""

    backoff: BackoffKind = Field(default=BackoffKind.EXPONENTIAL, description="Growth rule.")
    initial_delay: Duration = Field(
        default=timedelta(milliseconds=500), description="Wait before the first retry."
    )
    multiplier: float = Field(
        default=2.0, ge=1, le=10, description="Growth factor of exponential backoff."
    )
    max_delay: Duration = Field(
        default=timedelta(seconds=20), description="Cap on any single wait."
    )
    jitter: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Random share of each wait, so that many agents do not retry in step.",
    )
    respect_retry_after: bool = Field(
        default=True, description="Wait at least as long as a provider's Retry-After asks."
    )
    per_error_kind: RetryByKind | None = Field(
        default=None, description="Retry counts by kind of error."
    )


class HealthSpec(ApiModel):
    """How provider health is measured."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.probeInterval) || duration(self.probeInterval) > duration('0s')",
                "health.probeInterval must be greater than zero; leave it out for no probes",
            )
        )
    )

    window: Duration = Field(
        default=timedelta(minutes=5),
        description="Sliding window for success rate and latency figures.",
    )
    probe_interval: Duration | None = Field(
        default=None,
        description="Interval of active probe calls to providers; unset means no probes.",
    )
    probe_paid_providers: bool = Field(
        default=False, description="Also probe providers that charge; probes cost tokens."
    )


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
