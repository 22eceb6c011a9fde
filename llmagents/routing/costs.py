"""Money: what a call is expected to cost, and what calls did cost.

Estimates (a task's expected tokens × a provider's prices) only ever choose: they order the
cost-optimized strategy and gate the budget. What is charged and reported comes from the
usage a provider returned. Every token is priced by what it is: input served from the
provider's prompt cache at the cached-input price, hidden reasoning at the reasoning price,
the rest of the input and output at their own prices. One formula serves estimates and
charges, so that a test can reproduce any figure exactly.

A ``Price`` is resolved before the engine starts, from the pool spec or a price table
(``llmagents.pricing``); the engine only multiplies. ``None`` where a price is expected
means the price is unknown, which the manager treats by the documented budget rule
(docs/pricing.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmagents.api.pool import Pricing, ProviderSpec, ProviderType
from llmagents.chat import Usage

MAX_TOKENS_PER_CALL = 10_000_000
"""More tokens than this in one call is not a real count (the largest context windows hold
a few million): a provider reporting it is broken, and charging it would ruin the budget."""


def usage_problem(usage: Usage) -> str | None:
    """Why a provider's reported usage cannot be charged, or None when it can.

    Counts must be whole, at least 0 and at most ``MAX_TOKENS_PER_CALL``: a negative count
    would be a refund, a huge or non-finite one would exhaust the budget or overflow.
    """
    counts = (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cached input", usage.cached_input_tokens),
        ("reasoning", usage.reasoning_tokens),
    )
    for what, value in counts:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{what} token count {value!r} is not a whole number"
        if not 0 <= value <= MAX_TOKENS_PER_CALL:
            return f"{what} token count {value!r} is outside 0..{MAX_TOKENS_PER_CALL}"
    return None


@dataclass(frozen=True, slots=True)
class Rates:
    """US dollars per million tokens of each kind."""

    input: float
    output: float
    cached_input: float
    reasoning: float
    cache_write: float | None = None
    """Input written to the prompt cache; None means the input price."""

    @property
    def free(self) -> bool:
        return not (self.input or self.output or self.cached_input or self.reasoning
                    or self.cache_write)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Price:
    """A provider's prices: ``base`` rates, or a tier's rates once a call's input passes its
    threshold (the cliff model providers use: above 200k input tokens every token of the call
    costs the tier's rate). ``tiers`` is sorted by threshold."""

    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()

    @property
    def free(self) -> bool:
        return self.base.free and all(rates.free for _, rates in self.tiers)

    def rates_for(self, input_tokens: int) -> Rates:
        rates = self.base
        for threshold, tier in self.tiers:
            if input_tokens > threshold:
                rates = tier
        return rates

    @classmethod
    def from_spec(cls, pricing: Pricing) -> Price:
        """The prices a pool states; cached input defaults to the input price and reasoning
        to the output price, so an unstated price never undercounts."""
        return cls(
            Rates(
                input=pricing.input_per_million,
                output=pricing.output_per_million,
                cached_input=(
                    pricing.cached_input_per_million
                    if pricing.cached_input_per_million is not None
                    else pricing.input_per_million
                ),
                reasoning=(
                    pricing.reasoning_per_million
                    if pricing.reasoning_per_million is not None
                    else pricing.output_per_million
                ),
                cache_write=pricing.cache_write_input_per_million,
            )
        )


FREE = Price(Rates(0.0, 0.0, 0.0, 0.0))


def spec_price(spec: ProviderSpec) -> Price | None:
    """The price a provider's spec alone gives: its ``pricing``, free for the local ONNX
    model, else unknown (None) until a price table fills it in."""
    if spec.pricing is not None:
        return Price.from_spec(spec.pricing)
    if spec.type is ProviderType.ONNX:
        return FREE
    return None


def token_cost(input_tokens: int, output_tokens: int, price: Price) -> float:
    """US dollars for plain input and output tokens at ``price`` (what estimates use)."""
    rates = price.rates_for(input_tokens)
    return (input_tokens * rates.input + output_tokens * rates.output) / 1e6


def usage_cost(usage: Usage, price: Price) -> float:
    """US dollars a call with this real usage cost.

    ``cached_input_tokens`` and ``cache_write_input_tokens`` are part of ``input_tokens``
    and ``reasoning_tokens`` part of ``output_tokens`` (the chat model's convention); each
    part is priced at its own rate.
    """
    rates = price.rates_for(usage.input_tokens)
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_input_tokens, usage.input_tokens - cached)
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    write_rate = rates.cache_write if rates.cache_write is not None else rates.input
    return (
        (usage.input_tokens - cached - written) * rates.input
        + cached * rates.cached_input
        + written * write_rate
        + (usage.output_tokens - reasoning) * rates.output
        + reasoning * rates.reasoning
    ) / 1e6


@dataclass(slots=True)
class Spend:
    """Calls that reported usage, their tokens and their cost, for one provider or in total."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, usage: Usage, cost: float) -> None:
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.cost += cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cachedInputTokens": self.cached_input_tokens,
            "reasoningTokens": self.reasoning_tokens,
            "cost": self.cost,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spend:
        """Spend from a checkpoint; ``ValueError`` for a negative, non-finite or non-numeric
        figure (a checkpoint is trusted for spend only when every figure is sane).
        Checkpoints written before cached and reasoning tokens were counted lack them."""
        cost = data["cost"]
        if (
            isinstance(cost, bool)
            or not isinstance(cost, (int, float))
            or not (math.isfinite(cost) and cost >= 0)
        ):
            raise ValueError(f"spend cost {cost!r} is not a finite amount of at least 0")
        return cls(
            calls=_count(data, "calls"),
            input_tokens=_count(data, "inputTokens"),
            output_tokens=_count(data, "outputTokens"),
            cost=float(cost),
            cached_input_tokens=_count(data, "cachedInputTokens", 0),
            reasoning_tokens=_count(data, "reasoningTokens", 0),
        )


def _count(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data[key] if default is None else data.get(key, default)
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

    def add(self, provider: str, usage: Usage, price: Price | None) -> float:
        """Charge one call's real usage to ``provider``; returns its cost (0 when the price
        is unknown: the tokens still count)."""
        cost = usage_cost(usage, price) if price is not None else 0.0
        self.add_charged(provider, usage, cost)
        return cost

    def add_charged(self, provider: str, usage: Usage, cost: float) -> None:
        """Count a call whose cost was already worked out (a charge replayed from the
        runner's spend journal: charged then, at the prices of then)."""
        spend = self.by_provider.get(provider)
        if spend is None:
            spend = self.by_provider[provider] = Spend()
        spend.add(usage, cost)
        self.total.add(usage, cost)

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
