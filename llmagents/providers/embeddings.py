"""Embedding calls of the adapters whose protocols have them: OpenAI's and Gemini's.

Kept beside the chat translation rather than inside it: an adapter's ``embed`` asks this
module for the call's path and body and for the reading of its answer, by protocol. Gemini
reports no token usage for embeddings, so its usage is estimated (about four characters a
token), and so is its cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llmagents.chat import Usage
from llmagents.embeddings import EmbeddingRequest, Embeddings
from llmagents.errors import ConfigError, MalformedResponse
from llmagents.providers.mapping import missing
from llmagents.routing.complexity import estimate_tokens
from llmagents.wire import embeddings as wire

if TYPE_CHECKING:
    from llmagents.providers.base import ProviderAdapter


def embeddings_call(
    adapter: ProviderAdapter, request: EmbeddingRequest, model: str
) -> tuple[str, dict[str, Any]]:
    """The path (relative to the base URL) and JSON body of an embeddings call."""
    if adapter.protocol == "openai":
        body: dict[str, Any] = {
            "model": model,
            "input": list(request.inputs),
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        return "/embeddings", body
    if adapter.protocol == "gemini":
        name = model.removeprefix("models/")
        item: dict[str, Any] = {"model": f"models/{name}"}
        if request.dimensions is not None:
            item["outputDimensionality"] = request.dimensions
        requests = [{**item, "content": {"parts": [{"text": text}]}} for text in request.inputs]
        path = adapter._versioned(f"/models/{name}:batchEmbedContents")  # type: ignore[attr-defined]
        return path, {"requests": requests}
    raise ConfigError(f"provider {adapter.name}: the {adapter.protocol} protocol has no embeddings")


def parse_embeddings(
    adapter: ProviderAdapter, data: Any, request: EmbeddingRequest, model: str
) -> Embeddings:
    """The vectors and usage of an embeddings answer; ``MalformedResponse`` when it is not one."""
    provider = adapter.name
    try:
        if adapter.protocol == "gemini":
            batch = wire.GeminiBatchEmbedResponse.model_validate(data)
            vectors = [e.values for e in batch.embeddings]
            estimate = sum(estimate_tokens(text) for text in request.inputs)
            result = Embeddings(vectors, Usage(estimate, 0), model)
        else:
            answer = wire.EmbeddingsResponse.model_validate(data)
            ordered = sorted(answer.data, key=lambda d: d.index)
            vectors = [
                d.embedding if isinstance(d.embedding, list) else wire.decode_base64(d.embedding)
                for d in ordered
            ]
            if answer.usage is not None:
                result = Embeddings(
                    vectors, Usage(answer.usage.prompt_tokens, 0), answer.model or model
                )
            else:
                estimate = sum(estimate_tokens(text) for text in request.inputs)
                result = Embeddings(vectors, Usage(estimate, 0), answer.model or model)
    except (ValidationError, ValueError):
        raise missing("the embeddings' vectors", provider=provider) from None
    if len(result.vectors) != len(request.inputs):
        raise MalformedResponse(
            f"{len(result.vectors)} vectors for {len(request.inputs)} inputs", provider=provider
        )
    return result
