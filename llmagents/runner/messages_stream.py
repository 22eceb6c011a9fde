"""The Messages API's stream events for one answer of the gateway's ``/v1/messages``.

Split from ``messages_translate`` (the request and the whole answer): this encoder turns the
neutral stream's chunks into Anthropic's events, thinking blocks included.
"""

from __future__ import annotations

import secrets
from typing import Any

from llmagents.chat import Reasoning, StreamChunk, ToolCallDelta, Usage
from llmagents.runner.messages_translate import (
    message_id,
    stop_reason,
    usage_object,
)
from llmagents.runner.reasoning_tags import tag
from llmagents.wire import anthropic as wire


class MessagesStream:
    """Encodes one streamed answer as the Messages API's events, in Anthropic's order.

    ``message_start``; per content block ``content_block_start``, its deltas (``text_delta``,
    ``input_json_delta`` pieces of a tool's input, or ``thinking_delta`` pieces and one
    ``signature_delta``) and ``content_block_stop``; then
    ``message_delta`` with the stop reason and the usage, and ``message_stop``. Input tokens
    are known only at the end: ``message_start`` reports the gateway's estimate (what
    clients that read only it, as LangChain does, then show) and ``message_delta`` the
    provider's count, which Anthropic's SDK puts in its place. A provider failing
    mid-answer ends the stream with an ``error`` event, which the SDK raises.
    """

    def __init__(self, model: str, *, input_estimate: int = 0) -> None:
        self.model = model
        self.input_estimate = input_estimate
        self._index = -1
        self._open: str | None = None  # "text", "tool", "thinking" or "redacted"
        self._tools: dict[int, int] = {}  # tool-call index -> block index

    def start(self) -> bytes:
        message = wire.Message(
            id=message_id(),
            model=self.model,
            content=[],
            usage=wire.Usage(input_tokens=self.input_estimate, output_tokens=0),
        )
        return wire.sse(wire.MessageStart(message=message)) + wire.sse(wire.Ping())

    def chunk(self, chunk: StreamChunk) -> bytes:
        events = self._thinking(chunk.reasoning) if chunk.reasoning else b""
        if chunk.reasoning_end is not None:
            events += self._thinking_end(chunk.reasoning_end)
        events += self._text(chunk.text) if chunk.text else b""
        for delta in chunk.tool_calls:
            events += self._tool(delta)
        return events

    def _thinking(self, text: str) -> bytes:
        events = b""
        if self._open != "thinking":
            events += self._begin("thinking", wire.AnswerThinking(type="thinking"))
        delta = wire.ContentBlockDelta(index=self._index, delta=wire.ThinkingDelta(thinking=text))
        return events + wire.sse(delta)

    def _thinking_end(self, end: Reasoning) -> bytes:
        """The block's signature (prefixed by its provider), or a whole redacted block."""
        if end.redacted is not None:
            data = tag(end.provider, end.redacted)
            block = wire.AnswerRedactedThinking(type="redacted_thinking", data=data)
            return self._begin("redacted", block) + self._close()
        events = b""
        if self._open != "thinking":
            events += self._begin("thinking", wire.AnswerThinking(type="thinking"))
        if end.signature:
            signature = wire.SignatureDelta(signature=tag(end.provider, end.signature))
            events += wire.sse(wire.ContentBlockDelta(index=self._index, delta=signature))
        return events + self._close()

    def _text(self, text: str) -> bytes:
        events = b""
        if self._open != "text":
            events += self._begin("text", wire.AnswerText(type="text", text=""))
        delta = wire.ContentBlockDelta(index=self._index, delta=wire.TextDelta(text=text))
        return events + wire.sse(delta)

    def _tool(self, delta: ToolCallDelta) -> bytes:
        events = b""
        block = self._tools.get(delta.index)
        if block is None:
            use = wire.AnswerToolUse(
                type="tool_use",
                id=delta.id or "toolu_" + secrets.token_hex(12),
                name=delta.name or "",
                input={},
            )
            events += self._begin("tool", use)
            block = self._tools[delta.index] = self._index
        if delta.arguments:
            piece = wire.ContentBlockDelta(
                index=block, delta=wire.InputJsonDelta(partial_json=delta.arguments)
            )
            events += wire.sse(piece)
        return events

    def _begin(self, kind: str, block: Any) -> bytes:
        events = self._close()
        self._index += 1
        self._open = kind
        return events + wire.sse(wire.ContentBlockStart(index=self._index, content_block=block))

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return wire.sse(wire.ContentBlockStop(index=self._index))

    def end(self, finish_reason: str | None, usage: Usage | None) -> bytes:
        counted = usage_object(usage) if usage is not None else wire.Usage()
        delta = wire.MessageDelta(
            delta=wire.MessageDeltaBody(stop_reason=stop_reason(finish_reason)),
            usage=wire.DeltaUsage(**counted.model_dump()),
        )
        return self._close() + wire.sse(delta) + wire.sse(wire.MessageStop())

    def error(self, message: str) -> bytes:
        body = wire.ErrorBody(error=wire.ErrorDetail(type="api_error", message=message))
        return wire.sse(body)
