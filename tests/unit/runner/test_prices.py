"""Known prices: the pool's pricing, the genai-prices table, and the rule for unknown prices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec
from llmagents.chat import Usage
from llmagents.errors import AllProvidersFailed, ProviderError
from llmagents.pricing import SOURCE_LOCAL, SOURCE_SPEC, SOURCE_UNKNOWN, resolve, table_version
from llmagents.routing import Attempt, CallTask, Price, ProviderManager, Rates, usage_cost
from llmagents.routing.costs import token_cost

from .conftest import Edges, Fakes, config

AT = datetime(2026, 12, 1, tzinfo=UTC)


def spec(**fields: Any) -> ProviderSpec:
    fields.setdefault("secretRef", {"name": "keys"})
    return ProviderSpec.model_validate({"name": "p", **fields})


def test_a_pool_without_pricing_takes_anthropic_prices_from_the_table() -> None:
    known = resolve(spec(type="anthropic", model="claude-sonnet-4-5"), at=AT)
    assert known.source == f"genai-prices {table_version()}"
    assert known.detail == "anthropic/claude-sonnet-4-5"
    assert known.price is not None
    base = known.price.base
    assert (base.input, base.output, base.cached_input, base.reasoning) == (3.0, 15.0, 0.3, 15.0)
    # Above 200k input tokens every token of the call costs the higher tier (cliff pricing).
    assert base.cache_write == 3.75
    assert known.price.tiers == ((200_000, Rates(6.0, 22.5, 0.6, 22.5, 7.5)),)
    status = known.to_status()
    assert (status.source, status.tiered_above_tokens) == (known.source, 200_000)


def test_gemini_is_looked_up_at_google_and_openai_compatible_endpoints_by_base_url() -> None:
    gemini = resolve(spec(type="gemini", model="gemini-2.5-flash"), at=AT)
    assert gemini.detail == "google/gemini-2.5-flash"
    router = resolve(
        spec(type="openai", model="anthropic/claude-3.5-sonnet",
             baseURL="https://openrouter.ai/api/v1"), at=AT,
    )  # fmt: skip
    assert router.detail == "openrouter/anthropic/claude-3.5-sonnet"
    assert router.price is not None and router.price.base.input == 3.0


def test_a_self_hosted_openai_compatible_server_has_no_table_price() -> None:
    # The model name is OpenAI's, but a server on another address is not OpenAI's bill.
    known = resolve(
        spec(
            type="openai",
            model="gpt-4o-mini",
            baseURL="http://10.0.0.5:8000/v1",
            allowInsecureBaseURL=True,
        )
    )
    assert (known.price, known.source) == (None, SOURCE_UNKNOWN)
    assert "base URL http://10.0.0.5:8000/v1" in known.detail
    assert "gpt-4o-mini" in known.detail


def test_an_unknown_model_has_no_price_and_says_so() -> None:
    known = resolve(spec(type="openai", model="gpt-does-not-exist"), at=AT)
    assert not known.known
    assert "'gpt-does-not-exist'" in known.detail and "openai" in known.detail


def test_the_pools_pricing_wins_and_unset_cached_and_reasoning_prices_never_undercount() -> None:
    known = resolve(spec(type="anthropic", model="claude-sonnet-4-5",
                         pricing={"inputPerMillion": 1, "outputPerMillion": 2}))  # fmt: skip
    assert known.source == SOURCE_SPEC
    assert known.price == Price(Rates(input=1, output=2, cached_input=1, reasoning=2))
    local = resolve(ProviderSpec.model_validate({"name": "l", "type": "onnx", "model": "m"}))
    assert local.source == SOURCE_LOCAL and local.price is not None and local.price.free


def test_cached_input_and_reasoning_tokens_are_priced_at_their_own_rates() -> None:
    price = Price(Rates(input=3.0, output=15.0, cached_input=0.3, reasoning=20.0))
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cached_input_tokens=8_000,
                  reasoning_tokens=500)  # fmt: skip
    # 2000 fresh input at 3, 8000 cached at 0.3, 1500 plain output at 15, 500 reasoning at 20.
    expected = (2_000 * 3.0 + 8_000 * 0.3 + 1_500 * 15.0 + 500 * 20.0) / 1e6
    assert usage_cost(usage, price) == pytest.approx(expected, rel=1e-12)
    # Counts a provider reports beyond their totals are clamped, never negative tokens.
    odd = Usage(input_tokens=10, output_tokens=10, cached_input_tokens=50, reasoning_tokens=50)
    assert usage_cost(odd, price) == pytest.approx((10 * 0.3 + 10 * 20.0) / 1e6)


def test_a_call_above_the_tier_threshold_pays_the_tier_rate_for_every_token() -> None:
    price = Price(Rates(3.0, 15.0, 0.3, 15.0), ((200_000, Rates(6.0, 22.5, 0.6, 22.5)),))
    assert token_cost(200_000, 1_000, price) == pytest.approx((200_000 * 3 + 1_000 * 15) / 1e6)
    assert token_cost(200_001, 1_000, price) == pytest.approx((200_001 * 6 + 1_000 * 22.5) / 1e6)


class _Answer:
    def __init__(self) -> None:
        self.usage = Usage(1000, 1000)


def _pool() -> ProviderPoolSpec:
    return ProviderPoolSpec.model_validate({"providers": [
        {"name": "mystery", "type": "openai", "model": "m", "baseURL": "http://127.0.0.1:1/v1",
         "secretRef": {"name": "k"}, "priority": 1},
        {"name": "known", "type": "openai", "model": "m", "baseURL": "http://127.0.0.1:2/v1",
         "secretRef": {"name": "k"}, "priority": 2,
         "pricing": {"inputPerMillion": 1, "outputPerMillion": 1}},
    ]})  # fmt: skip


async def _served_by(manager: ProviderManager) -> list[str]:
    called: list[str] = []

    async def call(attempt: Attempt) -> _Answer:
        called.append(attempt.provider.name)
        return _Answer()

    await manager.execute(CallTask(input_tokens=10, output_tokens=10), call)
    return called


async def test_with_a_budget_a_provider_of_unknown_price_is_never_called() -> None:
    from llmagents.api.work import BudgetSpec

    manager = ProviderManager(_pool(), budget=BudgetSpec(limit=1.0))
    assert await _served_by(manager) == ["known"]
    assert manager.budget is not None and manager.budget.spent == pytest.approx(2000 / 1e6)

    only_mystery = ProviderManager(_pool(), budget=BudgetSpec(limit=1.0))
    with pytest.raises(AllProvidersFailed, match="mystery: price_unknown"):
        await only_mystery.execute(
            CallTask(providers=frozenset({"mystery"})),
            lambda attempt: (_ for _ in ()).throw(ProviderError("never called")),
        )


async def test_without_a_budget_it_is_called_and_its_tokens_count_at_no_cost() -> None:
    manager = ProviderManager(_pool())
    assert await _served_by(manager) == ["mystery"]
    spend = manager.spend_by_provider["mystery"]
    assert (spend.calls, spend.input_tokens, spend.cost) == (1, 1000, 0.0)


async def test_the_runner_reports_price_sources_and_leaves_price_unknown_to_the_operator(
    fakes: Fakes, edges: Edges
) -> None:
    cfg = config(fakes, tasks=None, budget={"limit": 5})
    providers = [
        p.model_copy(update={"pricing": None}) if p.name == "fallback" else p
        for p in cfg.pool.providers
    ]
    cfg = cfg.model_copy(update={"pool": cfg.pool.model_copy(update={"providers": providers})})
    runner = edges.runner(cfg)
    report = runner._report()
    prices = {p.name: p.price for p in report.status.providers or []}
    assert prices["primary"] is not None and prices["primary"].source == "spec"
    assert prices["fallback"] is not None and prices["fallback"].source == "unknown"
    # The operator owns the condition (it knows before any runner starts): two writers of
    # one condition would take it from each other on every write.
    assert "PriceUnknown" not in {c.type for c in report.conditions}
    await runner.close()


def test_anthropic_cache_writes_are_priced_above_input_as_the_table_says() -> None:
    from llmagents.providers.anthropic_answer import usage_of as _usage
    from llmagents.wire.anthropic import Usage as WireUsage

    # Anthropic reports cache reads and writes apart from input_tokens.
    usage = _usage(WireUsage(input_tokens=1_000, output_tokens=100,
                             cache_read_input_tokens=8_000, cache_creation_input_tokens=2_000))  # fmt: skip
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_input_tokens) == (
        11_000,
        8_000,
        2_000,
    )
    known = resolve(spec(type="anthropic", model="claude-sonnet-4-5"), at=AT)
    assert known.price is not None
    expected = (1_000 * 3.0 + 8_000 * 0.3 + 2_000 * 3.75 + 100 * 15.0) / 1e6
    assert usage_cost(usage, known.price) == pytest.approx(expected, rel=1e-12)
    # A pool's own pricing without a cache-write price charges writes as input.
    mine = Price.from_spec(
        spec(
            type="anthropic", model="m", pricing={"inputPerMillion": 3, "outputPerMillion": 15}
        ).pricing
    )  # type: ignore[arg-type]
    assert usage_cost(usage, mine) == pytest.approx((3_000 * 3 + 8_000 * 3 + 100 * 15) / 1e6)
