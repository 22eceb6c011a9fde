"""Embeddings on the wire: OpenAI's ``/v1/embeddings`` and Gemini's ``batchEmbedContents``.

Shared by the adapters (write requests, read answers), the fakes (both) and the gateway's
``/v1/embeddings`` (reads OpenAI's request, writes OpenAI's answer). OpenAI's SDK asks for
``encoding_format: "base64"`` unless told otherwise: the vector's little-endian float32
bytes, base64-encoded, which the SDK decodes back.
"""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Literal

from pydantic import Field, model_validator

from llmagents.wire import StrictWireModel, WireModel, extras, finite_json

MAX_INPUTS = 2048
"""Inputs of one OpenAI request at most (OpenAI's own limit)."""


class EmbeddingsRequest(StrictWireModel):
    """``POST /v1/embeddings``. Token-id inputs are refused: only text translates to every
    provider."""

    model: str | None = None
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
    dimensions: Annotated[int, Field(ge=1, le=65536)] | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @model_validator(mode="after")
    def _finite(self) -> EmbeddingsRequest:
        if not finite_json(extras(self)):
            raise ValueError("numbers must be finite (no NaN or Infinity) and nesting bounded")
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,) if isinstance(self.input, str) else tuple(self.input)


class EmbeddingData(WireModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(WireModel):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingsResponse(WireModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str = ""
    usage: EmbeddingsUsage | None = None


def encode_base64(vector: list[float]) -> str:
    """A vector as OpenAI's base64 encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def decode_base64(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# -- Gemini -----------------------------------------------------------------------------------


class GeminiPart(WireModel):
    text: str


class GeminiContent(WireModel):
    parts: list[GeminiPart]


class GeminiEmbedRequest(WireModel):
    """One request of ``batchEmbedContents``, and the body of ``embedContent``."""

    model: str | None = None
    content: GeminiContent
    task_type: str | None = Field(default=None, alias="taskType")
    output_dimensionality: int | None = Field(default=None, alias="outputDimensionality")


class GeminiBatchEmbedRequest(WireModel):
    requests: list[GeminiEmbedRequest] = Field(min_length=1)


class GeminiEmbedding(WireModel):
    values: list[float]


class GeminiBatchEmbedResponse(WireModel):
    embeddings: list[GeminiEmbedding]


class GeminiEmbedResponse(WireModel):
    embedding: GeminiEmbedding
