"""One provider of a ProviderPool: the endpoint, its key, model, tier, prices and limits.

Part of the pool's spec (``llmagents.api.pool`` re-exports it); the runner builds one adapter
per provider from it, and the CRD schema and its CEL rules come from these models.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from llmagents.api.base import ApiModel, Duration, cel

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
            "Prices used to compute cost from real usage. When unset, they come from the "
            "genai-prices table by type, model and baseURL (onnx is free); a model the table "
            "does not know sets the PriceUnknown condition on the pool and on its agents "
            "(docs/pricing.md)."
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
