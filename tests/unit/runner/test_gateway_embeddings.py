"""``POST /v1/embeddings`` through the pool, spoken to by OpenAI's client, with OpenAI and
Gemini fakes serving embeddings in their own shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import ValidationError

from llmagents.api.pool import ProviderSpec
from llmagents.api.runner_config import RunnerConfig
from llmagents.runner.embedding import embedding_price
from llmagents.runner.lifecycle import Runner
from llmagents.testing.fake_providers import FakeGemini
from llmagents.testing.fake_providers.embeddings import vector

from .conftest import KEYS, Edges, Fakes, config, openai_client, serving

GEMINI_KEY = "gemini-key-0123456789"
EMBEDDING_PRICE = 20.0  # USD per million tokens; the chat price in conftest is 1000


def with_embeddings(cfg: RunnerConfig, gemini: FakeGemini | None) -> RunnerConfig:
    """The conftest pool, both OpenAI fakes with an embedding model, and optionally a Gemini
    provider that serves only embeddings here."""
    embeddings = {"model": "text-embedding-3-small", "inputPerMillion": EMBEDDING_PRICE}
    providers = [
        p.model_copy(
            update={
                "embeddings": ProviderSpec.model_validate(
                    {**p.to_wire(), "embeddings": embeddings}
                ).embeddings
            }
        )
        for p in cfg.pool.providers
    ]
    if gemini is not None:
        providers.append(
            ProviderSpec.model_validate(
                {
                    "name": "gemini",
                    "type": "gemini",
                    "model": "gemini-2.5-flash",
                    "priority": 3,
                    "baseURL": gemini.base_url,
                    "secretRef": {"name": "keys"},
                    "timeout": "5s",
                    "maxRetries": 0,
                    "pricing": {"inputPerMillion": 1, "outputPerMillion": 1},
                    "embeddings": {"model": "gemini-embedding-001", "inputPerMillion": 0.15},
                }
            )
        )
    pool = cfg.pool.model_copy(update={"providers": providers})
    return cfg.model_copy(
        update={"pool": pool, "api_key_env": {**cfg.api_key_env, "gemini": "KEY_GEMINI"}}
    )


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


def _runner(edges: Edges, cfg: RunnerConfig) -> Runner:
    return edges.runner(cfg, api_keys={**KEYS, "gemini": GEMINI_KEY})


@pytest.fixture
async def served(
    fakes: Fakes, edges: Edges, gemini: FakeGemini
) -> AsyncIterator[tuple[Runner, str]]:
    cfg = with_embeddings(config(fakes, tasks=None, budget={"limit": 100}), gemini)
    runner = _runner(edges, cfg)
    async with serving(runner) as origin:
        yield runner, origin


TEXTS = ["the sea is blue", "grass is green"]


async def test_embeddings_fall_back_and_are_charged_at_the_embedding_price(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"outage": True})
    # The SDK asks for base64 unless told otherwise, and decodes it.
    raw = await openai_client(url).embeddings.with_raw_response.create(
        model="auto", input=TEXTS, dimensions=8
    )
    answer = raw.parse()
    assert raw.headers["x-llmagents-provider"] == "fallback"
    assert [d.index for d in answer.data] == [0, 1]
    for datum, text in zip(answer.data, TEXTS, strict=True):
        assert datum.embedding == pytest.approx(vector(text, 8), abs=1e-6)
    spend = runner.engine.manager.spend_by_provider["fallback"]
    assert spend.input_tokens == answer.usage.prompt_tokens > 0
    assert spend.cost == pytest.approx(answer.usage.prompt_tokens * EMBEDDING_PRICE / 1e6)
    assert float(raw.headers["x-llmagents-cost-usd"]) == pytest.approx(spend.cost)
    assert runner.engine.manager.status()["primary"].success_rate == 0.0


async def test_gemini_serves_embeddings_in_its_own_protocol(
    served: tuple[Runner, str], gemini: FakeGemini
) -> None:
    runner, url = served
    answer = await openai_client(url).embeddings.create(
        model="gemini-embedding-001", input="hello", encoding_format="float"
    )
    assert answer.model == "gemini-embedding-001"
    assert answer.data[0].embedding == pytest.approx(vector("hello"))
    assert gemini.stats.requests == 1
    spend = runner.engine.manager.spend_by_provider["gemini"]
    assert spend.input_tokens == answer.usage.prompt_tokens == 2  # estimated: Gemini reports none
    assert spend.cost == pytest.approx(2 * 0.15 / 1e6)


async def test_models_lists_the_embedding_models(served: tuple[Runner, str]) -> None:
    _, url = served
    listed = {m.id: m for m in (await openai_client(url).models.list()).data}
    gemini = listed["gemini-embedding-001"].model_dump()
    assert (gemini["owned_by"], gemini["capabilities"]) == ("gemini", ["embeddings"])
    assert listed["text-embedding-3-small"].model_dump()["providers"] == ["primary", "fallback"]


async def test_a_pool_without_an_embedding_model_refuses_clearly(
    fakes: Fakes, edges: Edges
) -> None:
    async with serving(_runner(edges, config(fakes, tasks=None))) as url:
        with pytest.raises(openai.BadRequestError, match=r"embeddings\.model on an") as refused:
            await openai_client(url).embeddings.create(model="auto", input="x")
        assert refused.value.code == "embeddings_unavailable"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input": [[1, 2, 3]]}, "token ids"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
async def test_invalid_embedding_requests_are_400(
    served: tuple[Runner, str], fakes: Fakes, body: dict[str, Any], needle: str
) -> None:
    _, url = served
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/embeddings", json={"model": "auto", **body})
    assert response.status_code == 400 and needle in response.json()["error"]["message"]
    assert fakes.primary.stats.requests == 0


def test_embeddings_are_refused_on_a_provider_type_that_has_none() -> None:
    with pytest.raises(ValidationError, match="openai and gemini only"):
        ProviderSpec.model_validate(
            {
                "name": "claude",
                "type": "anthropic",
                "model": "c",
                "secretRef": {"name": "k"},
                "embeddings": {"model": "voyage-3"},
            }
        )


@pytest.mark.parametrize(
    ("kind", "model", "per_million"),
    [("openai", "text-embedding-3-small", 0.02), ("gemini", "gemini-embedding-001", 0.15)],
)
def test_an_embedding_model_without_a_stated_price_is_charged_at_the_tables(
    kind: str, model: str, per_million: float
) -> None:
    spec = ProviderSpec.model_validate(
        {
            "name": "p",
            "type": kind,
            "model": "chat-model",
            "secretRef": {"name": "k"},
            "embeddings": {"model": model},
        }
    )
    price = embedding_price(spec)
    assert price is not None
    assert (price.base.input, price.base.output) == (pytest.approx(per_million), 0.0)


async def test_an_embedding_model_of_unknown_price_is_not_used_by_an_agent_with_a_budget(
    fakes: Fakes, edges: Edges
) -> None:
    # A self-hosted endpoint's model: no table knows its price, and none is stated.
    cfg = with_embeddings(config(fakes, tasks=None, budget={"limit": 100}), None)
    unpriced = [
        p.model_copy(update={"embeddings": p.embeddings.model_copy(
            update={"model": "bge-small", "input_per_million": None})})
        for p in cfg.pool.providers
    ]  # fmt: skip
    cfg = cfg.model_copy(update={"pool": cfg.pool.model_copy(update={"providers": unpriced})})
    async with serving(_runner(edges, cfg)) as url:
        with pytest.raises(openai.BadRequestError, match=r"embeddings\.inputPerMillion"):
            await openai_client(url).embeddings.create(model="auto", input="x")
    assert fakes.primary.stats.requests == 0 and fakes.fallback.stats.requests == 0
