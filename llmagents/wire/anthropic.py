"""Anthropic's Messages API wire format: request, answer, stream events and error.

Spoken by the Anthropic adapter (writes requests, reads answers and events), the fake
Anthropic server (both) and the gateway's ``/v1/messages`` front door (reads requests,
writes answers and events). Content is a list of typed blocks: ``text``, ``image``
(base64 or URL source), ``tool_use`` (the model calls a tool: ``id``, ``name``, ``input``
as a JSON object) and ``tool_result`` (the caller answers it by ``tool_use_id``);
``thinking`` (with its ``signature``) and ``redacted_thinking`` blocks (opaque ``data``)
carry the model's reasoning, which must come back unchanged in later turns.

A stream is ``message_start``, then per content block ``content_block_start``, its
``content_block_delta`` events (``text_delta``, or ``input_json_delta`` pieces of a
tool's input as JSON text), ``content_block_stop``, then ``message_delta`` (stop reason,
output tokens so far) and ``message_stop``; ``ping`` may come anywhere, ``error`` ends it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from llmagents.wire import StrictWireModel, WireModel, extras, finite_json

VERSION = "2023-06-01"
"""The ``anthropic-version`` header the adapter sends."""
TOOL_USE_ID_CHARS = r"[a-zA-Z0-9_-]+"
"""What an id of a ``tool_use`` block must be made of, whole (``re.fullmatch``: Python's
``$`` also matches before a final newline); others are mapped by the adapter."""
TOOL_USE_ID = rf"^{TOOL_USE_ID_CHARS}$"
"""The same as the API states it (a JSON Schema pattern, where ``$`` ends the text)."""
MIN_THINKING_BUDGET = 1024
"""The least ``thinking.budget_tokens`` the API takes; it must also be below ``max_tokens``."""
TOOL_NAME = r"^[a-zA-Z0-9_-]{1,128}$"

# -- content blocks ---------------------------------------------------------------------------


class TextBlock(StrictWireModel):
    type: Literal["text"]
    text: str


class Base64Source(StrictWireModel):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlSource(StrictWireModel):
    type: Literal["url"]
    url: str


ImageSource = Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ImageBlock(StrictWireModel):
    type: Literal["image"]
    source: ImageSource


class ToolUseBlock(StrictWireModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(StrictWireModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = (
        None
    )
    is_error: bool | None = None


class ThinkingBlock(StrictWireModel):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(StrictWireModel):
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(StrictWireModel):
    role: Literal["user", "assistant"]
    content: str | list[Block]


# -- request ----------------------------------------------------------------------------------


class Tool(StrictWireModel):
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoiceAuto(StrictWireModel):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(StrictWireModel):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(StrictWireModel):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(StrictWireModel):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
    Field(discriminator="type"),
]


class MessagesRequest(StrictWireModel):
    """``POST /v1/messages``."""

    model: str
    max_tokens: int = Field(ge=1, le=2**31 - 1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=2**31 - 1)
    stream: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None

    @model_validator(mode="after")
    def _finite(self) -> MessagesRequest:
        schemas = [t.input_schema for t in self.tools or ()]
        if not finite_json(extras(self)) or not finite_json(schemas):
            raise ValueError("numbers must be finite (no NaN or Infinity) and nesting bounded")
        problem = thinking_problem(extras(self).get("thinking"), self.max_tokens)
        if problem is not None:
            raise PydanticCustomError("thinking", problem)
        return self


def thinking_problem(thinking: Any, max_tokens: int) -> str | None:
    """Why the API refuses ``thinking`` beside ``max_tokens`` (it checks the budget of
    ``{"type": "enabled", "budget_tokens": N}``: at least 1024, below ``max_tokens``), or
    ``None``. Other types (``disabled``, ``adaptive``) have no budget to check."""
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int):
        return "thinking.enabled.budget_tokens: Input should be a valid integer"
    if budget < MIN_THINKING_BUDGET:
        return (f"thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{MIN_THINKING_BUDGET}")  # fmt: skip
    if budget >= max_tokens:
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    return None


# -- answer -----------------------------------------------------------------------------------


class Usage(WireModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class AnswerText(WireModel):
    type: Literal["text"]
    text: str


class AnswerToolUse(WireModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class AnswerThinking(WireModel):
    type: Literal["thinking"]
    thinking: str = ""
    signature: str = ""


class AnswerRedactedThinking(WireModel):
    type: Literal["redacted_thinking"]
    data: str


class AnswerOther(WireModel):
    """A block the adapter does not translate (server tools, citations): read and skipped."""

    type: str


def _tag(known: tuple[str, ...]) -> Any:
    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return kind if kind in known else "other"

    return tag


AnswerBlock = Annotated[
    Annotated[AnswerText, Tag("text")]
    | Annotated[AnswerToolUse, Tag("tool_use")]
    | Annotated[AnswerThinking, Tag("thinking")]
    | Annotated[AnswerRedactedThinking, Tag("redacted_thinking")]
    | Annotated[AnswerOther, Tag("other")],
    Discriminator(_tag(("text", "tool_use", "thinking", "redacted_thinking"))),
]


class Message(WireModel):
    """A complete answer."""

    id: str = ""
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str = ""
    content: list[AnswerBlock]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage


# -- stream events ----------------------------------------------------------------------------


class MessageStart(WireModel):
    type: Literal["message_start"] = "message_start"
    message: Message


class ContentBlockStart(WireModel):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: AnswerBlock


class TextDelta(WireModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class InputJsonDelta(WireModel):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str


class ThinkingDelta(WireModel):
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str


class SignatureDelta(WireModel):
    """The signature of the thinking block, sent once just before the block stops."""

    type: Literal["signature_delta"] = "signature_delta"
    signature: str


class OtherDelta(WireModel):
    """``citations_delta`` and what comes later: not translated."""

    type: str


class ContentBlockDelta(WireModel):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: Annotated[
        Annotated[TextDelta, Tag("text_delta")]
        | Annotated[InputJsonDelta, Tag("input_json_delta")]
        | Annotated[ThinkingDelta, Tag("thinking_delta")]
        | Annotated[SignatureDelta, Tag("signature_delta")]
        | Annotated[OtherDelta, Tag("other")],
        Discriminator(
            _tag(("text_delta", "input_json_delta", "thinking_delta", "signature_delta"))
        ),
    ]


class ContentBlockStop(WireModel):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class MessageDeltaBody(WireModel):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class DeltaUsage(WireModel):
    output_tokens: int | None = None
    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class MessageDelta(WireModel):
    type: Literal["message_delta"] = "message_delta"
    delta: MessageDeltaBody
    usage: DeltaUsage = Field(default_factory=DeltaUsage)


class MessageStop(WireModel):
    type: Literal["message_stop"] = "message_stop"


class Ping(WireModel):
    type: Literal["ping"] = "ping"


# -- errors -----------------------------------------------------------------------------------


class ErrorDetail(WireModel):
    type: str = ""
    message: str = ""


class ErrorBody(WireModel):
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``; also a stream's
    ``error`` event."""

    type: Literal["error"] = "error"
    error: ErrorDetail
    request_id: str | None = None


def sse(event: WireModel) -> bytes:
    """One named event of an Anthropic stream (``event:`` is the model's ``type``)."""
    kind = getattr(event, "type", "message")
    return f"event: {kind}\ndata: ".encode() + event.model_dump_json().encode() + b"\n\n"


def sse_json(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
