"""The Responses API's streamed events for one answer, in OpenAI's order.

The gateway's neutral path (``chat_path``) drives a ``ResponsesStream`` as its
``StreamWriter``: ``start`` before the first chunk, ``chunk`` for each piece of text or of
tool calls, ``end`` or ``error`` at the end. Each method returns the bytes to send.
"""

from __future__ import annotations

import time
from typing import Any

from llmagents.chat import Reasoning, StreamChunk, ToolCallDelta, Usage
from llmagents.runner.custom_tools import custom_names, input_of
from llmagents.runner.reasoning_tags import encrypted_content
from llmagents.runner.responses_answer import ending, skeleton, usage_object
from llmagents.wire.responses import (
    OutputCustomToolCall,
    OutputFunctionCall,
    OutputItem,
    OutputMessage,
    OutputReasoning,
    OutputText,
    ResponseError,
    ResponsesRequest,
    SummaryText,
    new_id,
    sse_event,
)


class ResponsesStream:
    """Encodes one streamed answer as the Responses API's events, in OpenAI's order.

    ``response.created`` and ``response.in_progress``; then per output item
    ``response.output_item.added``, its deltas (``response.reasoning_summary_part.added`` and
    ``response.reasoning_summary_text.delta`` for reasoning, ``response.content_part.added``
    and ``response.output_text.delta`` for text, ``response.function_call_arguments.delta``
    for a call) and its closing events (``...done``, ``response.output_item.done``); finally
    ``response.completed`` (or ``response.incomplete`` when the answer was cut by the token
    limit) with the whole response and its usage. A provider failing mid-answer ends the
    stream with ``response.failed``, which the SDKs raise, never a silent end.
    """

    def __init__(self, wire: ResponsesRequest, model: str) -> None:
        self.response = skeleton(wire, new_id("resp"), model, int(time.time()))
        self._encrypted = wire.shows_encrypted_reasoning
        self._sequence = 0
        self._open: OutputItem | None = None
        self._calls: dict[int, OutputFunctionCall | OutputCustomToolCall] = {}
        self._arguments: dict[str, str] = {}
        """A custom call's JSON arguments as they stream; its input is sent once whole."""
        self._custom = custom_names(wire)
        self._positions: dict[str, int] = {}

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = sse_event(kind, self._sequence, fields)
        self._sequence += 1
        return event

    def _lifecycle(self, kind: str) -> bytes:
        return self._event(kind, response=self.response.document())

    def start(self) -> bytes:
        return self._lifecycle("response.created") + self._lifecycle("response.in_progress")

    def chunk(self, chunk: StreamChunk) -> bytes:
        events = self.reasoning(chunk.reasoning) if chunk.reasoning else b""
        if chunk.reasoning_end is not None:
            events += self._reasoning_end(chunk.reasoning_end)
        if chunk.text:
            events += self.text(chunk.text)
        for delta in chunk.tool_calls:
            events += self.tool_call(delta)
        return events

    def reasoning(self, delta: str) -> bytes:
        events = b""
        if not isinstance(self._open, OutputReasoning):
            events += self._close()
            item = OutputReasoning(id=new_id("rs"), summary=[], status="in_progress")
            events += self._add(item)
            item.summary.append(SummaryText(text=""))
            events += self._event(
                "response.reasoning_summary_part.added",
                **self._where(item),
                summary_index=0,
                part=_dump(item.summary[0]),
            )
        opened = self._open
        assert isinstance(opened, OutputReasoning)
        opened.summary[0].text += delta
        return events + self._event(
            "response.reasoning_summary_text.delta",
            **self._where(opened),
            summary_index=0,
            delta=delta,
        )

    def _reasoning_end(self, end: Reasoning) -> bytes:
        """A block of reasoning is complete: its item closes, with the block's
        ``encrypted_content`` when asked for; a redacted block (no text) is an item of its
        own only then. The next block of reasoning is an item of its own."""
        content = encrypted_content(end) if self._encrypted else None
        events = b""
        if not isinstance(self._open, OutputReasoning):
            if content is None:
                return b""
            events += self._close()
            events += self._add(OutputReasoning(id=new_id("rs"), summary=[], status="in_progress"))
        opened = self._open
        assert isinstance(opened, OutputReasoning)
        opened.encrypted_content = content
        return events + self._close()

    def text(self, delta: str) -> bytes:
        events = b""
        if not isinstance(self._open, OutputMessage):
            events += self._close()
            message = OutputMessage(id=new_id("msg"), status="in_progress", content=[])
            events += self._add(message)
            message.content.append(OutputText(type="output_text", text=""))
            events += self._event(
                "response.content_part.added",
                **self._where(message),
                content_index=0,
                part=_dump(message.content[0]),
            )
        opened = self._open
        assert isinstance(opened, OutputMessage)
        message = opened
        message.content[0].text += delta
        return events + self._event(
            "response.output_text.delta",
            **self._where(message),
            content_index=0,
            delta=delta,
            logprobs=[],
        )

    def tool_call(self, delta: ToolCallDelta) -> bytes:
        events = b""
        call = self._calls.get(delta.index)
        if call is None:
            events += self._close()
            call_id, name = delta.id or new_id("call"), delta.name or ""
            if name in self._custom:
                call = OutputCustomToolCall(id=new_id("ctc"), call_id=call_id, name=name,
                                            input="", status="in_progress")  # fmt: skip
                self._arguments[call.id] = ""
            else:
                call = OutputFunctionCall(id=new_id("fc"), call_id=call_id, name=name,
                                          arguments="", status="in_progress")  # fmt: skip
            self._calls[delta.index] = call
            events += self._add(call)
        if isinstance(call, OutputCustomToolCall):
            # Its input is a string inside JSON arguments: sent whole when the call closes.
            self._arguments[call.id] += delta.arguments
            call.input = input_of(self._arguments[call.id])
            return events
        if call is not self._open:
            # The API streams one item after the other. A piece of a call already closed
            # (interleaved parallel calls; no adapter sends them) still reaches the call's
            # arguments in response.completed, though its done events went out without it.
            call.arguments += delta.arguments
            return events
        if delta.arguments:
            call.arguments += delta.arguments
            events += self._event(
                "response.function_call_arguments.delta", **self._where(call), delta=delta.arguments
            )
        return events

    def end(self, finish_reason: str | None, usage: Usage | None) -> bytes:
        status, details = ending(finish_reason)
        events = self._close(incomplete=details is not None)
        self.response.status = status
        self.response.incomplete_details = details
        self.response.usage = usage_object(usage) if usage is not None else None
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return events + self._lifecycle(kind)

    def error(self, message: str) -> bytes:
        self.response.status = "failed"
        self.response.error = ResponseError(code="server_error", message=message)
        return self._lifecycle("response.failed")

    def _where(self, item: OutputItem) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": self._positions[item.id]}

    def _add(self, item: OutputItem) -> bytes:
        self._positions[item.id] = len(self.response.output)
        self.response.output.append(item)
        self._open = item
        return self._event(
            "response.output_item.added",
            output_index=len(self.response.output) - 1,
            item=_dump(item),
        )

    def _summary_done(self, item: OutputReasoning, where: dict[str, Any]) -> bytes:
        summary = item.summary[0]
        events = self._event(
            "response.reasoning_summary_text.done", **where, summary_index=0, text=summary.text
        )
        return events + self._event(
            "response.reasoning_summary_part.done", **where, summary_index=0, part=_dump(summary)
        )

    def _close(self, *, incomplete: bool = False) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        item.status = "incomplete" if incomplete else "completed"
        where = self._where(item)
        if isinstance(item, OutputMessage):
            part = item.content[0]
            events = self._event(
                "response.output_text.done", **where, content_index=0, text=part.text, logprobs=[]
            )
            events += self._event(
                "response.content_part.done", **where, content_index=0, part=_dump(part)
            )
        elif isinstance(item, OutputReasoning):
            if not item.summary:  # a redacted block: nothing was shown
                events = b""
            else:
                events = self._summary_done(item, where)
        elif isinstance(item, OutputCustomToolCall):
            events = self._event(
                "response.custom_tool_call_input.delta", **where, delta=item.input
            ) + self._event("response.custom_tool_call_input.done", **where, input=item.input)
        else:
            events = self._event(
                "response.function_call_arguments.done",
                **where,
                name=item.name,
                arguments=item.arguments,
            )
        return events + self._event(
            "response.output_item.done", output_index=where["output_index"], item=_dump(item)
        )


def _dump(model: OutputItem | OutputText | SummaryText) -> dict[str, Any]:
    return model.model_dump(mode="json")
