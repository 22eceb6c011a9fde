"""A chat completions stream: its chunks, each written as one server-sent ``data:`` event,
and the ``[DONE]`` that ends it.

Deltas are written with only the fields they set, as OpenAI writes them.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from llmagents.wire import WireModel, extras
from llmagents.wire.openai_chat.answer import CompletionUsage


class SetFieldsOnly(WireModel):
    """A model written with only the fields that are set (not ``None``), as OpenAI writes
    a stream's deltas."""

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class FunctionDelta(SetFieldsOnly):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(SetFieldsOnly):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDelta | None = None


class Delta(SetFieldsOnly):
    """What a chunk adds; written with only the fields it sets, as OpenAI writes it (the
    final chunk's delta is ``{}``)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning_details: list[Any] | None = None
    """Pieces of OpenRouter's reasoning blocks, each with the ``index`` of its block."""
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @property
    def reasoning_text(self) -> str:
        other = extras(self).get("reasoning")
        return self.reasoning_content or (other if isinstance(other, str) else "")


class ChunkChoice(WireModel):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    logprobs: Any = None
    finish_reason: str | None = None


class ChatCompletionChunk(WireModel):
    """One ``data:`` event of a stream; the usage-only chunk has empty ``choices``."""

    id: str = ""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: CompletionUsage | None = None


STREAM_DONE = b"data: [DONE]\n\n"


def sse(document: WireModel | dict[str, Any]) -> bytes:
    """One ``data:`` event of an OpenAI stream."""
    if isinstance(document, dict):
        return b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"
    return b"data: " + document.model_dump_json().encode() + b"\n\n"
