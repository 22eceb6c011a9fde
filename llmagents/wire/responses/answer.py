"""The Responses API's answer: the ``response`` object, its output items and stream events.

The fields OpenAI's SDK and the Agents SDK read (both are checked against the SDK's own
models in the tests); lenient, as every answer model is (``llmagents.wire``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from pydantic import Field

from llmagents.wire import WireModel
from llmagents.wire.responses.request import OutputText


def new_id(prefix: str) -> str:
    """An id in OpenAI's form for responses (``resp``), messages (``msg``), calls (``fc``)."""
    return f"{prefix}_{secrets.token_hex(24)}"


ItemStatus = Literal["in_progress", "completed", "incomplete"]
"""Where an output item stands, as the Responses API says it."""


class OutputMessage(WireModel):
    type: Literal["message"] = "message"
    id: str
    status: ItemStatus
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class OutputFunctionCall(WireModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus


class OutputCustomToolCall(WireModel):
    type: Literal["custom_tool_call"] = "custom_tool_call"
    id: str
    call_id: str
    name: str
    input: str
    status: ItemStatus


class SummaryText(WireModel):
    type: Literal["summary_text"] = "summary_text"
    text: str


class OutputReasoning(WireModel):
    """The model's visible reasoning, as a reasoning summary (what OpenAI's models show)."""

    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[SummaryText]
    status: ItemStatus
    encrypted_content: str | None = None
    """Only when the request's ``include`` asks for ``reasoning.encrypted_content``."""


OutputItem = OutputMessage | OutputFunctionCall | OutputCustomToolCall | OutputReasoning


class InputTokensDetails(WireModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    """Newer SDKs require the field; the chat model does not track cache writes."""


class OutputTokensDetails(WireModel):
    reasoning_tokens: int = 0


class ResponseUsage(WireModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(WireModel):
    code: str
    message: str


class IncompleteDetails(WireModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(WireModel):
    """The ``response`` object: returned whole, and inside the stream's lifecycle events."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: None = None
    reasoning: dict[str, Any] = Field(default_factory=lambda: {"effort": None, "summary": None})
    store: bool = False
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: Any = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    background: bool = False

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def sse_event(kind: str, sequence: int, fields: dict[str, Any]) -> bytes:
    """One server-sent event of a streamed response, named as OpenAI names them."""
    data = {"type": kind, "sequence_number": sequence, **fields}
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
