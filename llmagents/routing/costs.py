"""Money: what a call is expected to cost, and what calls did cost.

Estimates (a task's expected tokens × a provider's prices) only ever choose: they order the
cost-optimized strategy and gate the budget. What is charged and reported comes from the
usage a provider returned, input and output tokens each at their own price. One formula,
``(input × inputPrice + output × outputPrice) / 1e6``, serves both, so that a test can
reproduce any figure exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmagents.api.pool import Pricing
from llmagents.chat import Usage


MAX_TOKENS_PER_CALL = 10_000_000
"""More tokens than this in one call is not a real count (the largest context windows hold
a few million): a provider reporting it is broken, and charging it would ruin the budget."""


def usage_problem(usage: Usage) -> str | None:
    """Why a provider's reported usage cannot be charged, or None when it can.

    Counts must be whole, at least 0 and at most ``MAX_TOKENS_PER_CALL``: a negative count
    would be a refund, a huge or non-finite one would exhaust the budget or overflow.
    """
    for what, value in (("input", usage.input_tokens), ("output", usage.output_tokens)):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{what} token count {value!r} is not a whole number"
        if not 0 <= value <= MAX_TOKENS_PER_CALL:
            return f"{what} token count {value!r} is outside 0..{MAX_TOKENS_PER_CALL}"
    return None


def token_cost(input_tokens: int, output_tokens: int, pricing: Pricing) -> float:
    """US dollars for the given tokens at ``pricing``."""
    return (
        input_tokens * pricing.input_per_million + output_tokens * pricing.output_per_million
    ) / 1e6


def usage_cost(usage: Usage, pricing: Pricing) -> float:
    """US dollars a call with this real usage cost."""
    return token_cost(usage.input_tokens, usage.output_tokens, pricing)


@dataclass(slots=True)
class Spend:
    """Calls that reported usage, their tokens and their cost, for one provider or in total."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, usage: Usage, cost: float) -> None:
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost += cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cost": self.cost,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spend:
        """Spend from a checkpoint; ``ValueError`` for a negative, non-finite or non-numeric
        figure (a checkpoint is trusted for spend only when every figure is sane)."""
        counts = [_count(data, key) for key in ("calls", "inputTokens", "outputTokens")]
        cost = data["cost"]
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not (
            math.isfinite(cost) and cost >= 0
        ):
            raise ValueError(f"spend cost {cost!r} is not a finite amount of at least 0")
        return cls(calls=counts[0], input_tokens=counts[1], output_tokens=counts[2],
                   cost=float(cost))  # fmt: skip


def _count(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"spend {key} {value!r} is not a whole number of at least 0")
    return value


class CostLedger:
    """Spend per provider name and in total, since the agent started (checkpoints included).

    Keyed by name rather than by pool member so that spend on a provider later removed from
    the pool still counts in the total after a restore.
    """

    __slots__ = ("by_provider", "total")

    def __init__(self) -> None:
        self.by_provider: dict[str, Spend] = {}
        self.total = Spend()

    def add(self, provider: str, usage: Usage, pricing: Pricing) -> float:
        """Charge one call's real usage to ``provider``; returns its cost."""
        cost = usage_cost(usage, pricing)
        spend = self.by_provider.get(provider)
        if spend is None:
            spend = self.by_provider[provider] = Spend()
        spend.add(usage, cost)
        self.total.add(usage, cost)
        return cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.to_dict(),
            "byProvider": {name: spend.to_dict() for name, spend in self.by_provider.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.total = Spend.from_dict(data["total"])
        self.by_provider = {
            name: Spend.from_dict(spend) for name, spend in data["byProvider"].items()
        }
