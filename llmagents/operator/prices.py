"""What each pool's providers cost, as the operator resolves it, and the ``PriceUnknown``
condition it sets on the pool and on the agents that use it.

The runner resolves prices when it starts (``llmagents.pricing``); a platform engineer who
applies a pool with a model the price table does not know should not have to wait for a
pod to learn it. So the operator resolves the same way, from the pool's spec, when it
reconciles the pool and its agents: the pool's status shows each provider's price and its
source, and ``PriceUnknown`` names the providers without one, on the pool and on every agent
of the pool, before any pod runs. The operator alone writes the condition; the runner
reports the prices it charges in its half of the agent's status.

Resolution is cached per pool generation (a pool's agents share it) and redone hourly, since
the table's prices change on set dates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from llmagents import pricing
from llmagents.api.status import ConditionStatus
from llmagents.operator.objects import PoolKey, PoolObject
from llmagents.operator.phase import CondSpec

PRICE_UNKNOWN = "PriceUnknown"
REFRESH_SECONDS = 3600.0


def unknown_prices(known: Mapping[str, pricing.KnownPrice]) -> dict[str, str]:
    """The providers with no known price, each with why the table did not match it."""
    return {name: k.detail for name, k in known.items() if not k.known}


def price_condition(unknown: Mapping[str, str], *, budget: bool | None) -> CondSpec:
    """``PriceUnknown``: True naming each provider without a price and the budget rule that
    applies (``budget``: whether the agent has one; None for a pool, whose agents vary)."""
    if not unknown:
        return CondSpec(PRICE_UNKNOWN, ConditionStatus.FALSE, "PricesKnown",
                        "every provider has a price: its pricing, the table's, or free")  # fmt: skip
    names = "; ".join(f"{name}: {detail}" for name, detail in sorted(unknown.items()))
    if budget is None:
        rule = ("Agents with a budget never call them (their spend could not be counted); "
                "agents without one count their calls at $0")  # fmt: skip
    elif budget:
        rule = "This agent has a budget, so it never calls them (their spend could not be counted)"
    else:
        rule = "This agent has no budget: their calls are counted at $0"
    return CondSpec(
        PRICE_UNKNOWN,
        ConditionStatus.TRUE,
        "NoPriceForModel",
        f"No known price for {names}. {rule}. Set their spec.providers[].pricing "
        "(docs/pricing.md).",
    )


class PoolPrices:
    """Each pool's resolved prices, per pool generation."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cache: dict[
            PoolKey, tuple[tuple[str, int], float, dict[str, pricing.KnownPrice]]
        ] = {}

    def of(self, pool: PoolObject) -> dict[str, pricing.KnownPrice] | None:
        """The prices of ``pool``'s providers by name; None when its spec is invalid."""
        if pool.spec is None:
            return None
        version = (pool.uid, pool.generation)
        cached = self._cache.get(pool.key)
        now = self._clock()
        if cached is not None and cached[0] == version and now - cached[1] < REFRESH_SECONDS:
            return cached[2]
        known = pricing.resolve_pool(pool.spec)
        self._cache[pool.key] = (version, now, known)
        return known

    def forget(self, key: PoolKey) -> None:
        self._cache.pop(key, None)
