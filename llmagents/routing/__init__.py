"""The fallback engine: routes one agent's calls over its provider pool.

Pure and clock-injected: no Kubernetes, no HTTP, no real time unless none is injected. The
runner builds a ``ProviderManager`` from the pool spec and budget, and passes each call as an
``async (Attempt) -> response`` function that talks to the provider.
"""

from llmagents.routing.breaker import Admission, BreakerState, CircuitBreaker, Transition
from llmagents.routing.budget import Budget, period_bounds
from llmagents.routing.calls import (
    DEFAULT_OUTPUT_TOKENS,
    Attempt,
    AttemptRecord,
    CallResult,
    CallTask,
    Fallback,
    HasUsage,
    SkipReason,
)
from llmagents.routing.complexity import complexity_for, estimate_message_tokens, estimate_tokens
from llmagents.routing.costs import (
    FREE,
    CostLedger,
    Price,
    Rates,
    Spend,
    spec_price,
    token_cost,
    usage_cost,
)
from llmagents.routing.health import Health, HealthStats
from llmagents.routing.listener import EngineListener
from llmagents.routing.manager import Call, ProviderManager
from llmagents.routing.snapshot import ProviderReport

__all__ = [
    "Admission",
    "Attempt",
    "AttemptRecord",
    "BreakerState",
    "Budget",
    "Call",
    "CallResult",
    "CallTask",
    "CircuitBreaker",
    "CostLedger",
    "DEFAULT_OUTPUT_TOKENS",
    "EngineListener",
    "FREE",
    "Fallback",
    "HasUsage",
    "Health",
    "HealthStats",
    "Price",
    "ProviderManager",
    "ProviderReport",
    "Rates",
    "SkipReason",
    "Spend",
    "Transition",
    "complexity_for",
    "estimate_message_tokens",
    "estimate_tokens",
    "period_bounds",
    "spec_price",
    "token_cost",
    "usage_cost",
]
