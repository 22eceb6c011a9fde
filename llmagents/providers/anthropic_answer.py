"""Reading Anthropic's answers: whole messages, stream events and error bodies.

Kept apart from the adapter (``anthropic``), which writes requests. ``text`` blocks are the
answer's text and ``tool_use`` blocks its tool calls; ``thinking`` blocks (with their
``signature``) and ``redacted_thinking`` blocks (opaque ``data``) become the answer's
``Reasoning``, tagged with the provider that produced it, since a signature is valid only
there (the adapter sends them back to that provider alone). The forced tool that carries
structured output comes back as the answer's text. The error type decides the taxonomy,
so that 529 ``overloaded_error`` stays distinct from 429 ``rate_limit_error``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from llmagents.chat import ChatResponse, Reasoning, StreamChunk, ToolCall, ToolCallDelta, Usage
from llmagents.errors import (
    AuthFailed,
    MalformedResponse,
    ModelNotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    ServerError,
)
from llmagents.providers.mapping import (
    decode_json,
    error_for_status,
    missing,
    refused_request,
    short,
)
from llmagents.providers.sse import SseEvent
from llmagents.wire import anthropic as wire

JSON_TOOL = "json_answer"
"""The forced tool that carries structured output (a tool name the client's may not take:
a client tool of the same name is left as is and the answer read as a tool call)."""

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


_ERROR_TYPES: dict[str, type[ProviderError]] = {
    "overloaded_error": Overloaded,
    "rate_limit_error": RateLimited,
    "authentication_error": AuthFailed,
    "permission_error": AuthFailed,
    "billing_error": AuthFailed,
    "not_found_error": ModelNotFound,
    "invalid_request_error": RequestRefused,
    "request_too_large": RequestRefused,
    "api_error": ServerError,
    "timeout_error": ProviderTimeout,
}


def error_from_body(
    error: dict[str, Any],
    data: dict[str, Any],
    *,
    status: int | None,
    retry_after: float | None,
    provider: str,
) -> ProviderError:
    kind = str(error.get("type", ""))
    message = f"{kind}: {short(error.get('message', ''))}"
    if data.get("request_id"):
        message += f" (request_id {data['request_id']})"
    cls = _ERROR_TYPES.get(kind)
    if cls is None:
        if status is None:
            return ServerError(message, provider=provider)
        return error_for_status(status, message, provider=provider, retry_after=retry_after)
    if cls is RequestRefused:
        return refused_request(message, provider=provider, status=status)
    return cls(message, provider=provider, status_code=status, retry_after=retry_after)


def usage_of(raw: wire.Usage | wire.DeltaUsage) -> Usage:
    # Cached prompt tokens are reported apart from input_tokens; they were still sent, so the
    # budget counts them as input rather than forgetting them.
    read = raw.cache_read_input_tokens or 0
    written = raw.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=(raw.input_tokens or 0) + written + read,
        output_tokens=raw.output_tokens or 0,
        cached_input_tokens=read,
        cache_write_input_tokens=written,
    )


def finish_of(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH.get(str(stop_reason), str(stop_reason))


def parse_message(data: Any, *, provider: str, model: str) -> ChatResponse:
    """A whole answer; ``MalformedResponse`` when it is not in the documented shape."""
    try:
        answer = wire.Message.model_validate(data)
    except ValidationError:
        raise missing("content, usage or stop_reason", provider=provider) from None
    text = "".join(b.text for b in answer.content if isinstance(b, wire.AnswerText))
    calls = [b for b in answer.content if isinstance(b, wire.AnswerToolUse)]
    finish = finish_of(answer.stop_reason)
    if len(calls) == 1 and calls[0].name == JSON_TOOL:
        text, calls, finish = json.dumps(calls[0].input), [], "stop"
    reasoning = tuple(
        Reasoning(b.thinking, signature=b.signature or None, provider=provider)
        if isinstance(b, wire.AnswerThinking)
        else Reasoning(redacted=b.data, provider=provider)
        for b in answer.content
        if isinstance(b, wire.AnswerThinking | wire.AnswerRedactedThinking)
    )
    return ChatResponse(
        text=text,
        usage=usage_of(answer.usage),
        model=answer.model or model,
        finish_reason=finish,
        provider=provider,
        tool_calls=tuple(
            ToolCall(c.id, c.name, json.dumps(c.input, separators=(",", ":"))) for c in calls
        ),
        reasoning=reasoning,
    )


class AnthropicStream:
    """message_start → content_block_* (text_delta, input_json_delta, thinking_delta and
    signature_delta) → message_delta → message_stop. Tool-use blocks are numbered in the
    order they start, as OpenAI numbers the tool calls of a stream; the forced JSON tool's
    input is relayed as text; a thinking block's text as reasoning pieces and its
    signature as the block's end."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None
        self.stop_reason: object = None
        self._calls: dict[int, int] = {}
        """Content block index → tool-call index."""
        self._json_block: int | None = None
        self._thinking: int | None = None
        """The thinking block whose signature is still to come."""

    def feed(self, event: SseEvent) -> StreamChunk | None:
        kind = event.event
        if kind in ("ping", "content_block_stop"):
            return None
        data = decode_json(event.data, provider=self.provider, what=f"{kind} event")
        try:
            if kind == "content_block_delta":
                return self._delta(wire.ContentBlockDelta.model_validate(data))
            if kind == "content_block_start":
                return self._start(wire.ContentBlockStart.model_validate(data))
            if kind == "message_start":
                self.usage = usage_of(wire.MessageStart.model_validate(data).message.usage)
            elif kind == "message_delta":
                delta = wire.MessageDelta.model_validate(data)
                self.stop_reason = delta.delta.stop_reason or self.stop_reason
                self._updateusage_of(delta.usage)
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                raise error_from_body(
                    data["error"], data, status=None, retry_after=None, provider=self.provider
                )
        except (KeyError, TypeError, AttributeError, ValueError, ValidationError):
            raise MalformedResponse(
                f"{kind} event lacks its documented fields", provider=self.provider
            ) from None
        return None

    def _start(self, start: wire.ContentBlockStart) -> StreamChunk | None:
        block = start.content_block
        if isinstance(block, wire.AnswerRedactedThinking):
            end = Reasoning(redacted=block.data, provider=self.provider)
            return StreamChunk(reasoning_end=end)
        if isinstance(block, wire.AnswerThinking):
            self._thinking = start.index
            return StreamChunk(reasoning=block.thinking) if block.thinking else None
        if not isinstance(block, wire.AnswerToolUse):
            return None
        if block.name == JSON_TOOL:
            self._json_block = start.index
            return None
        index = self._calls[start.index] = len(self._calls)
        return StreamChunk(tool_calls=(ToolCallDelta(index, block.id, block.name),))

    def _delta(self, event: wire.ContentBlockDelta) -> StreamChunk | None:
        delta = event.delta
        if isinstance(delta, wire.TextDelta):
            return StreamChunk(text=delta.text) if delta.text else None
        if isinstance(delta, wire.ThinkingDelta):
            return StreamChunk(reasoning=delta.thinking) if delta.thinking else None
        if isinstance(delta, wire.SignatureDelta):
            if event.index != self._thinking:
                raise ValueError("signature_delta for a block that is no thinking block")
            self._thinking = None
            end = Reasoning(signature=delta.signature, provider=self.provider)
            return StreamChunk(reasoning_end=end)
        if not isinstance(delta, wire.InputJsonDelta) or not delta.partial_json:
            return None
        if event.index == self._json_block:
            return StreamChunk(text=delta.partial_json)
        index = self._calls.get(event.index)
        if index is None:
            raise ValueError("input_json_delta for a block that is no tool_use")
        return StreamChunk(tool_calls=(ToolCallDelta(index, arguments=delta.partial_json),))

    def _updateusage_of(self, raw: wire.DeltaUsage) -> None:
        if self.usage is None:
            raise MalformedResponse("message_delta before message_start", provider=self.provider)
        # output_tokens in message_delta is the running total, not an increment.
        if raw.output_tokens is not None:
            self.usage.output_tokens = raw.output_tokens
        if raw.input_tokens is not None:
            counted = usage_of(raw)
            self.usage = Usage(counted.input_tokens, self.usage.output_tokens,
                               counted.cached_input_tokens)  # fmt: skip

    def finish(self) -> StreamChunk:
        if not self.done:
            raise MalformedResponse("stream ended before message_stop", provider=self.provider)
        if self.usage is None:
            raise missing("message_start usage", provider=self.provider)
        finish = finish_of(self.stop_reason)
        if self._json_block is not None and not self._calls:
            finish = "stop"
        return StreamChunk(usage=self.usage, finish_reason=finish)
