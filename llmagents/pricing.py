"""Known prices: what each provider of a pool charges, from its spec or a maintained table.

A pool may leave ``pricing`` out. The runner then looks the provider up, once at start, in
the price table of the ``genai-prices`` package (Pydantic's table of LLM API prices, kept
current by its maintainers and released on PyPI every few weeks; its snapshot ships inside
the wheel, so nothing is fetched at run time): by type (Anthropic, Google for gemini,
OpenAI), by base URL for OpenAI-compatible endpoints (OpenRouter, Groq, Together, Azure and
others the table knows), and by model name. What a self-hosted server charges no table
knows: such a provider needs ``pricing``, or it has no known price (``PriceUnknown``).

Each provider's price carries where it came from (``spec``, ``local`` for the ONNX sidecar,
``genai-prices <version>`` with the table's model id, or ``unknown``), which the runner
writes to the agent's status. Tiered prices (cheaper below 200k input tokens) keep their
tiers; cached-input and reasoning prices come from the table where it has them.

The table module is large (about half a second to import), so it is imported only when a
provider needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from typing import Any

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec, ProviderType
from llmagents.api.status import ProviderPrice
from llmagents.routing.costs import FREE, Price, Rates

logger = logging.getLogger(__name__)

TABLE_PACKAGE = "genai-prices"

SOURCE_SPEC = "spec"
"""The pool's own ``pricing``."""
SOURCE_LOCAL = "local"
"""The local ONNX model: free."""
SOURCE_UNKNOWN = "unknown"
"""Neither ``pricing`` nor the table: the budget rule for unknown prices applies."""

_TABLE_PROVIDER = {
    ProviderType.ANTHROPIC: "anthropic",
    ProviderType.GEMINI: "google",
    ProviderType.OPENAI: "openai",
}


@dataclass(frozen=True, slots=True)
class KnownPrice:
    """A provider's price and where it came from; ``price`` is None when unknown."""

    price: Price | None
    source: str
    detail: str = ""
    """The table's provider and model id it matched, or why nothing matched."""

    @property
    def known(self) -> bool:
        return self.price is not None

    def to_status(self) -> ProviderPrice:
        price = self.price
        if price is None:
            return ProviderPrice(source=self.source)
        base = price.base
        return ProviderPrice(
            source=self.source,
            model=self.detail or None,
            input_per_million=base.input,
            output_per_million=base.output,
            cached_input_per_million=base.cached_input,
            reasoning_per_million=base.reasoning,
            cache_write_input_per_million=(
                base.cache_write if base.cache_write is not None else base.input
            ),
            tiered_above_tokens=price.tiers[0][0] if price.tiers else None,
        )


def table_version() -> str:
    """The installed price table's version, as the status names it."""
    try:
        return metadata.version(TABLE_PACKAGE)
    except metadata.PackageNotFoundError:
        return "not installed"


def resolve(spec: ProviderSpec, *, at: datetime | None = None) -> KnownPrice:
    """The price ``spec`` is charged at, at wall time ``at`` (prices change on set dates)."""
    if spec.pricing is not None:
        return KnownPrice(Price.from_spec(spec.pricing), SOURCE_SPEC)
    if spec.type is ProviderType.ONNX:
        return KnownPrice(FREE, SOURCE_LOCAL)
    return _from_table(spec, at or datetime.now(UTC))


def resolve_pool(pool: ProviderPoolSpec, *, at: datetime | None = None) -> dict[str, KnownPrice]:
    """Every provider's price, by name."""
    return {spec.name: resolve(spec, at=at) for spec in pool.providers}


def prices(known: Mapping[str, KnownPrice]) -> dict[str, Price | None]:
    """The prices alone, as the engine takes them."""
    return {name: k.price for name, k in known.items()}


def resolve_embeddings(spec: ProviderSpec, *, at: datetime | None = None) -> KnownPrice:
    """The price of ``spec``'s embedding model (``embeddings``): input tokens only, as
    embedding models charge; its ``inputPerMillion``, else the table's price of the model at
    the provider's vendor or base URL."""
    embeddings = spec.embeddings
    assert embeddings is not None
    rate = embeddings.input_per_million
    if rate is not None:
        return KnownPrice(Price(Rates(input=rate, output=0.0, cached_input=rate, reasoning=0.0)),
                          SOURCE_SPEC)  # fmt: skip
    probe = spec.model_copy(update={"model": embeddings.model, "pricing": None})
    return _from_table(probe, at or datetime.now(UTC), input_only=True)


def _from_table(spec: ProviderSpec, at: datetime, *, input_only: bool = False) -> KnownPrice:
    try:
        from genai_prices import data_snapshot
    except ImportError:
        return KnownPrice(None, SOURCE_UNKNOWN, f"the {TABLE_PACKAGE} package is not installed")
    source = f"{TABLE_PACKAGE} {table_version()}"
    snapshot = data_snapshot.get_snapshot()
    # An OpenAI-compatible endpoint is whoever serves the base URL (OpenRouter, Groq, a
    # self-hosted vLLM); Anthropic's and Gemini's protocols name their vendor, so a base URL
    # there is a proxy or a regional endpoint of the same prices.
    by_url = spec.type is ProviderType.OPENAI and spec.base_url is not None
    where = f"base URL {spec.base_url}" if by_url else _TABLE_PROVIDER[spec.type]
    try:
        provider, model = snapshot.find_provider_model(
            spec.model,
            None,
            None if by_url else _TABLE_PROVIDER[spec.type],
            spec.base_url if by_url else None,
        )
        table_price = model.get_prices(at)
    except LookupError:
        return KnownPrice(
            None, SOURCE_UNKNOWN, f"{TABLE_PACKAGE} {table_version()} has no price for "
            f"model {spec.model!r} at {where}",
        )  # fmt: skip
    price = _price(table_price, input_only=input_only)
    if price is None:
        return KnownPrice(
            None, SOURCE_UNKNOWN, f"{TABLE_PACKAGE} lists {provider.id}/{model.id} without "
            "per-token input and output prices",
        )  # fmt: skip
    return KnownPrice(price, source, f"{provider.id}/{model.id}")


def _price(table_price: Any, *, input_only: bool = False) -> Price | None:
    """Our ``Price`` from the table's ``ModelPrice`` (Decimal or tiered, per million tokens);
    ``input_only`` for models that produce no tokens (embeddings)."""
    input_ = getattr(table_price, "input_mtok", None)
    output = getattr(table_price, "output_mtok", None)
    if output is None and input_only:
        output = Decimal(0)
    if input_ is None or output is None:
        return None
    cached = getattr(table_price, "cache_read_mtok", None) or input_
    written = getattr(table_price, "cache_write_mtok", None) or input_
    thresholds = sorted(
        {tier.start for value in (input_, output, cached, written)
         for tier in getattr(value, "tiers", ())}
    )  # fmt: skip

    def rates(above: int | None) -> Rates:
        out = _at(output, above)
        return Rates(input=_at(input_, above), output=out, cached_input=_at(cached, above),
                     reasoning=out, cache_write=_at(written, above))  # fmt: skip

    return Price(rates(None), tuple((start, rates(start)) for start in thresholds))


def _at(value: Any, above: int | None) -> float:
    """A table price (a Decimal, or tiers) for calls with more than ``above`` input tokens."""
    if isinstance(value, Decimal):
        return float(value)
    price: Decimal = value.base
    if above is not None:
        for tier in value.tiers:
            if above >= tier.start:
                price = tier.price
    return float(price)
