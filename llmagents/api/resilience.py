"""How the engine treats a failing provider: circuit breaker, retries and backoff, health.

Part of the pool's spec (``llmagents.api.pool`` re-exports it); the engine (``routing``)
reads these models as its configuration.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from llmagents.api.base import ApiModel, Duration, cel


class BackoffKind(StrEnum):
    """How the wait between retries grows."""

    EXPONENTIAL = "exponential"
    """initialDelay × multiplier^attempt, capped at maxDelay."""
    LINEAR = "linear"
    """initialDelay × (attempt + 1), capped at maxDelay."""


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
