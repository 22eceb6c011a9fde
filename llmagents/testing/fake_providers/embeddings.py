"""Embeddings in the fakes: OpenAI's ``POST /v1/embeddings`` and Gemini's
``models/{model}:batchEmbedContents`` and ``:embedContent``, in the real shapes.

Vectors are deterministic (derived from a hash of the text, unit length), so a test can
compare them across providers and calls. The fault plan applies as to chat calls: an outage,
a scripted status, a hang or a reset, a malformed or wrong-shaped body; stream faults answer
with the overload status, as a plain chat call does. Embedding models are any model name
the fake lists plus the ones here.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmagents.testing.fake_providers.behaviour import count_tokens
from llmagents.testing.fake_providers.faults import FaultKind
from llmagents.testing.fake_providers.server import Reject
from llmagents.wire import embeddings as wire

if TYPE_CHECKING:
    from llmagents.testing.fake_providers.server import FakeProviderServer

EMBEDDING_MODELS = ("text-embedding-3-small", "gemini-embedding-001")
DEFAULT_DIMENSIONS = 16
"""Length of a vector when the request names none; the real models' are far longer."""


def vector(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's unit vector for ``text``: the same text always gives the same vector."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dimensions}I", raw[: dimensions * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


@dataclass(slots=True)
class EmbedCall:
    model: str
    inputs: list[str]
    dimensions: int | None


async def serve(
    fake: FakeProviderServer,
    request: web.Request,
    parse: Callable[[web.Request], Awaitable[EmbedCall]],
    answer: Callable[[EmbedCall, list[list[float]], int], Any],
) -> web.StreamResponse:
    """One embeddings call through the fake's fault plan."""
    core = fake.core
    core.stats.requests += 1
    call: EmbedCall | None = None
    if not core.outage_active():
        try:
            call = await parse(request)
        except Reject as rejected:
            core.stats.outcomes[f"rejected_{rejected.status}"] += 1
            return fake._error_response(rejected.status, rejected.message, reason=rejected.reason)
    fault, label = core.decide()
    delay = core.delay()
    if delay:
        await asyncio.sleep(delay)
    core.stats.outcomes[label] += 1
    kind = fault.kind if fault is not None else FaultKind.OK
    if kind is FaultKind.HANG:
        await fake._hang()
        return fake._abort(request)
    if kind in (FaultKind.RESET, FaultKind.BREAK):
        return fake._abort(request)
    if kind is FaultKind.STATUS:
        assert fault is not None and fault.status is not None
        return fake._error_response(fault.status, None, fault)
    if call is None or kind is FaultKind.STREAM_ERROR:
        return fake._error_response(fake.overload_status, None)
    if kind is FaultKind.WRONG_SHAPE:
        return web.json_response({"unexpected": "shape"})
    if kind in (FaultKind.MALFORMED, FaultKind.TRUNCATED):
        return web.Response(body=b'{"data": [<html>', content_type="application/json")
    tokens = sum(count_tokens(text) for text in call.inputs)
    core.stats.input_tokens += tokens
    vectors = [vector(text, call.dimensions or DEFAULT_DIMENSIONS) for text in call.inputs]
    return web.json_response(answer(call, vectors, tokens))


# -- OpenAI -----------------------------------------------------------------------------------


async def _parse_openai(fake: FakeProviderServer, request: web.Request) -> EmbedCall:
    fake._check_auth(request)  # type: ignore[attr-defined]
    try:
        body = wire.EmbeddingsRequest.model_validate_json(await request.read())
    except ValueError:
        raise Reject(400, "'input' : input must be a string or an array of strings") from None
    if body.model not in (*fake.models, *EMBEDDING_MODELS):
        raise Reject(
            404,
            f"The model `{body.model}` does not exist or you do not have access to it.",
            reason="model_not_found",
        )
    return EmbedCall(body.model or "", list(body.inputs), body.dimensions)


def _answer_openai(call: EmbedCall, vectors: list[list[float]], tokens: int) -> Any:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": call.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def openai_route(fake: FakeProviderServer) -> web.RouteDef:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await serve(fake, request, lambda r: _parse_openai(fake, r), _answer_openai)

    return web.post("/v1/embeddings", handle)


# -- Gemini -----------------------------------------------------------------------------------

GEMINI_METHODS = ("batchEmbedContents", "embedContent")


async def _parse_gemini(fake: FakeProviderServer, request: web.Request) -> EmbedCall:
    fake._check_auth(request)  # type: ignore[attr-defined]
    model, _, method = request.match_info["target"].partition(":")
    try:
        raw = await request.read()
        if method == "batchEmbedContents":
            items = wire.GeminiBatchEmbedRequest.model_validate_json(raw).requests
        else:
            items = [wire.GeminiEmbedRequest.model_validate_json(raw)]
    except ValueError:
        raise Reject(400, "Invalid JSON payload received.") from None
    if model not in (*fake.models, *EMBEDDING_MODELS):
        raise Reject(
            404,
            f"models/{model} is not found for API version v1beta, or is not "
            f"supported for {method}.",
        )
    for i, item in enumerate(items):
        if item.model is not None and item.model != f"models/{model}":
            raise Reject(
                400,
                f"* BatchEmbedContentsRequest.requests[{i}].model: the model "
                "must match the model of the call",
            )
    texts = ["".join(p.text for p in item.content.parts) for item in items]
    return EmbedCall(model, texts, items[0].output_dimensionality)


def gemini_answer(method: str) -> Callable[[EmbedCall, list[list[float]], int], Any]:
    def answer(call: EmbedCall, vectors: list[list[float]], tokens: int) -> Any:
        if method == "embedContent":
            return {"embedding": {"values": vectors[0]}}
        return {"embeddings": [{"values": v} for v in vectors]}

    return answer


async def serve_gemini(fake: FakeProviderServer, request: web.Request) -> web.StreamResponse:
    method = request.match_info["target"].partition(":")[2]
    return await serve(fake, request, lambda r: _parse_gemini(fake, r), gemini_answer(method))
