"""``POST /v1/embeddings``: OpenAI's embeddings API as a front door of the gateway.

The request (text inputs; ``dimensions``; ``encoding_format`` float or base64, the OpenAI
SDK's default) goes to the providers of the pool that have an embedding model, with the
engine's fallback, breakers, retries and budget (``runner.embedding``); the answer is
OpenAI's list of embeddings with the usage, whichever protocol the provider spoke. The
request's ``model`` selects a provider by name or by embedding model; anything else means
every provider that has one. Refusals use OpenAI's error shape; a pool without an embedding
model is a 400 saying how to add one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from llmagents.embeddings import EmbeddingRequest
from llmagents.errors import BudgetExhausted, CallFailed
from llmagents.runner.chat_path import Refusal, check_accepting, refusal_of
from llmagents.runner.embedding import embed, embedding_providers
from llmagents.runner.openai_chat import json_response, refusal_response
from llmagents.runner.web import Request, Response
from llmagents.wire import embeddings as wire

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner


async def handle(runner: Runner, request: Request) -> Response:
    try:
        check_accepting(runner)
        parsed = _parse(request.body)
        pool = runner.config.pool
        budgeted = runner.engine.manager.budget is not None
        providers = embedding_providers(pool, parsed.model, priced_only=budgeted)
        if not providers:
            if embedding_providers(pool, parsed.model):
                message = ("no embedding model of a known price, and the agent has a budget: "
                           "set embeddings.inputPerMillion")  # fmt: skip
            else:
                message = ("no provider of the pool has an embedding model: set "
                           "embeddings.model on an openai or gemini provider")  # fmt: skip
            raise Refusal(
                400,
                f"pool {runner.config.pool_name}: {message}",
                code="embeddings_unavailable",
                param="model",
            )
        asked = EmbeddingRequest(parsed.inputs, parsed.dimensions)
        try:
            result = await embed(runner.engine, asked, providers)
        except (BudgetExhausted, CallFailed) as failed:
            raise refusal_of(runner, failed) from None
    except Refusal as refusal:
        return refusal_response(runner, refusal, stream=False)
    runner.metrics.gateway_request(stream=False, code=200)
    answer = result.value
    encode = wire.encode_base64 if parsed.encoding_format == "base64" else list
    body = wire.EmbeddingsResponse(
        data=[
            wire.EmbeddingData(index=i, embedding=encode(v)) for i, v in enumerate(answer.vectors)
        ],
        model=answer.model,
        usage=wire.EmbeddingsUsage(
            prompt_tokens=answer.usage.input_tokens, total_tokens=answer.usage.input_tokens
        ),
    )
    headers = {
        "x-llmagents-provider": result.provider,
        "x-llmagents-cost-usd": f"{result.cost:.8f}",
    }
    return json_response(body.model_dump(mode="json"), headers=headers)


def _parse(raw: bytes) -> wire.EmbeddingsRequest:
    try:
        return wire.EmbeddingsRequest.model_validate_json(raw)
    except ValidationError as invalid:
        error = invalid.errors(include_url=False)[0]
        if error["type"] == "json_invalid":
            raise Refusal(400, f"the request body is not valid JSON: {error['msg']}") from None
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("list[", "str")))
        hint = (
            " (input is a string or a list of strings; token ids are not taken)"
            if where.startswith("input")
            else ""
        )
        raise Refusal(400, f"{where}: {error['msg']}{hint}", param=where or None) from None
