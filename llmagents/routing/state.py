"""Everything the engine keeps about one provider of the pool, precomputed for the hot path."""

from __future__ import annotations

from llmagents.api.pool import ProviderSpec, Tier
from llmagents.routing.breaker import CircuitBreaker
from llmagents.routing.calls import CallTask
from llmagents.routing.costs import token_cost
from llmagents.routing.health import Health


class ProviderState:
    """A pool member's spec, breaker, health and misconfiguration mark."""

    __slots__ = ("breaker", "free", "health", "index", "misconfigured", "name", "priority",
                 "spec", "tier", "timeout")

    def __init__(
        self, spec: ProviderSpec, *, index: int, breaker: CircuitBreaker, health: Health
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.priority = spec.priority
        self.tier: Tier = spec.tier
        self.free = spec.free
        self.timeout = spec.timeout.total_seconds()
        self.breaker = breaker
        self.health = health
        self.misconfigured: str | None = None
        """Why the provider's configuration looks wrong (auth, bad request, unknown model)."""

    def estimate(self, task: CallTask) -> float:
        """Expected cost of ``task`` here, in US dollars."""
        if self.free:
            return 0.0
        return token_cost(task.input_tokens, task.output_tokens, self.spec.pricing)
