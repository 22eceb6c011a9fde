"""Embeddings through the agent's engine: the same pool, breakers, retries, budget and spend.

An embeddings call goes to the providers of the pool that have an embedding model
(``embeddings`` in their spec), in the pool's order, with fallback like a chat call. The
manager checks the budget against the call's estimate at the provider's chat input price,
which is never lower than its embedding price, and charges the answer's usage at the
embedding model's own price: the spec's ``embeddings.inputPerMillion``, else the
genai-prices table's price of that model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec
from llmagents.embeddings import EmbeddingRequest, Embeddings
from llmagents.pricing import resolve_embeddings
from llmagents.routing import Attempt, CallResult, CallTask
from llmagents.routing.complexity import estimate_tokens
from llmagents.routing.costs import Price
from llmagents.runner.pool_client import PoolClient

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Embedded:
    """An answer the manager leaves unsettled (``usage`` None) so that it is charged at the
    embedding price rather than the chat price."""

    embeddings: Embeddings
    usage: None = None


def embedding_providers(
    pool: ProviderPoolSpec, model: str | None, *, priced_only: bool = False
) -> list[str]:
    """The providers an embeddings request naming ``model`` may use, in pool order: a
    provider's name, an embedding model of the pool, or anything else for all of them.
    ``priced_only`` (an agent with a budget) leaves out embedding models of unknown price,
    as the engine does with chat models: their spend could not be counted."""
    offering = [
        p for p in pool.providers
        if p.embeddings is not None and not (priced_only and embedding_price(p) is None)
    ]  # fmt: skip
    if model:
        named = [p.name for p in offering if model in (p.name, p.embeddings.model)]  # type: ignore[union-attr]
        if named:
            return named
    return [p.name for p in offering]


def embedding_price(spec: ProviderSpec) -> Price | None:
    """What ``spec``'s embedding model charges per token; None when unknown."""
    embeddings = spec.embeddings
    assert embeddings is not None
    key = (spec.type, embeddings.model, spec.base_url, embeddings.input_per_million)
    if key not in _PRICES:
        _PRICES[key] = _price(spec)
    return _PRICES[key]


_PRICES: dict[tuple[object, ...], Price | None] = {}
"""Resolved once per embedding model, not per call."""


def _price(spec: ProviderSpec) -> Price | None:
    known = resolve_embeddings(spec)
    if known.price is None:
        logger.warning(
            "embedding model %s has no known price (%s): its calls cost 0 in the budget; set "
            "embeddings.inputPerMillion",
            spec.embeddings.model if spec.embeddings else "",
            known.detail,
        )
    return known.price


async def embed(
    engine: PoolClient, request: EmbeddingRequest, providers: list[str]
) -> CallResult[Embeddings]:
    """Vectors from the first of ``providers`` that answers; raises what ``execute`` raises."""
    pool = engine.manager.pool
    specs = {p.name: p for p in pool.providers}
    task = CallTask(
        input_tokens=sum(estimate_tokens(text) for text in request.inputs),
        output_tokens=0,
        providers=frozenset(providers),
        name="embeddings",
    )

    tracer = engine.tracer

    async def call(attempt: Attempt) -> _Embedded:
        spec = attempt.provider
        assert spec.embeddings is not None
        adapter = engine.adapters[spec.name]
        if tracer is None:
            got = await adapter.embed(request, model=spec.embeddings.model,
                                      timeout=attempt.timeout)  # fmt: skip
            return _Embedded(got)
        with tracer.attempt(attempt, operation="embeddings", model=spec.embeddings.model) as span:
            got = await adapter.embed(request, model=spec.embeddings.model,
                                      timeout=attempt.timeout)  # fmt: skip
            tracer.answered(span, got.usage)
        return _Embedded(got)

    if tracer is None:
        result = await engine.manager.execute(task, call)
    else:
        span = tracer.start_embeddings(task, inputs=len(request.inputs))
        result = await tracer.run_call(span, lambda: engine.manager.execute(task, call))
    embeddings = result.value.embeddings
    engine.manager.record_usage(
        result, embeddings.usage, price=embedding_price(specs[result.provider])
    )
    if tracer is not None:
        tracer.end_call(span, result)
    return CallResult(
        result.provider,
        embeddings,
        result.attempts,
        result.fallbacks,
        result.latency,
        result.usage,
        result.cost,
        True,
    )
