"""The answer side of OpenAI's Responses API: the ``response`` object of a non-streamed
call, and the pieces the stream's events repeat (``responses_stream``).

Output items come in the order the model produced them: its reasoning first, as
``reasoning`` items whose ``summary`` holds the visible text (Anthropic's thinking, an
OpenAI-compatible server's ``reasoning_content``, Gemini's thought summaries), one item per
block of reasoning; then the message with the answer's text; then the tool calls.
A signed or redacted block is the item's ``encrypted_content`` (tagged with its provider,
``reasoning_tags``) when the request's ``include`` asks for ``reasoning.encrypted_content``,
as OpenAI's API does; sent back, it returns to that provider only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from llmagents.chat import FinishReason, Reasoning, ToolCall, Usage
from llmagents.runner.custom_tools import custom_names, input_of
from llmagents.runner.reasoning_tags import encrypted_content
from llmagents.wire.responses import (
    IncompleteDetails,
    InputTokensDetails,
    OutputCustomToolCall,
    OutputFunctionCall,
    OutputMessage,
    OutputReasoning,
    OutputText,
    OutputTokensDetails,
    ResponseObject,
    ResponsesRequest,
    ResponseUsage,
    SummaryText,
    ToolChoiceFunction,
    new_id,
)


def usage_object(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_input_tokens),
        output_tokens=usage.output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.total_tokens,
    )


def ending(
    finish_reason: str | None,
) -> tuple[Literal["completed", "incomplete"], IncompleteDetails | None]:
    if finish_reason == FinishReason.LENGTH:
        return "incomplete", IncompleteDetails(reason="max_output_tokens")
    if finish_reason == FinishReason.CONTENT_FILTER:
        return "incomplete", IncompleteDetails(reason="content_filter")
    return "completed", None


def skeleton(wire: ResponsesRequest, rid: str, model: str, created: int) -> ResponseObject:
    """The response object before any output: what every lifecycle event repeats."""
    text: dict[str, Any] = {"format": {"type": "text"}}
    if wire.text is not None and wire.text.format is not None:
        text = {"format": wire.text.format.model_dump(mode="json", by_alias=True)}
    return ResponseObject(
        id=rid,
        created_at=created,
        status="in_progress",
        instructions=wire.instructions,
        max_output_tokens=wire.max_output_tokens,
        model=model,
        parallel_tool_calls=wire.parallel_tool_calls is not False,
        temperature=wire.temperature if wire.temperature is not None else 1.0,
        text=text,
        tool_choice=wire.tool_choice.model_dump(mode="json")
        if isinstance(wire.tool_choice, ToolChoiceFunction)
        else wire.tool_choice or "auto",
        tools=[t.model_dump(mode="json", exclude_none=True) for t in wire.tools],
        top_p=wire.top_p if wire.top_p is not None else 1.0,
        user=wire.user,
        metadata=wire.metadata or {},
        reasoning={"effort": wire.reasoning.effort, "summary": wire.reasoning.summary}
        if wire.reasoning is not None
        else {"effort": None, "summary": None},
    )


def response_object(
    wire: ResponsesRequest,
    *,
    text: str,
    tool_calls: Iterable[ToolCall],
    usage: Usage,
    finish_reason: str | None,
    model: str,
    reasoning: Iterable[Reasoning] = (),
) -> ResponseObject:
    """The whole answer of a non-streamed call."""
    response = skeleton(wire, new_id("resp"), model, int(time.time()))
    response.status, response.incomplete_details = ending(finish_reason)
    item_status = "incomplete" if response.incomplete_details else "completed"
    encrypted = wire.shows_encrypted_reasoning
    for r in reasoning:
        content = encrypted_content(r) if encrypted else None
        if r.text or content:
            response.output.append(OutputReasoning(
                id=new_id("rs"), summary=[SummaryText(text=r.text)] if r.text else [],
                status="completed", encrypted_content=content,
            ))  # fmt: skip
    calls = list(tool_calls)
    if text or not calls:
        response.output.append(
            OutputMessage(
                id=new_id("msg"),
                status=item_status,
                content=[OutputText(type="output_text", text=text)],
            )
        )
    custom = custom_names(wire)
    for call in calls:
        response.output.append(
            OutputCustomToolCall(
                id=new_id("ctc"),
                call_id=call.id,
                name=call.name,
                input=input_of(call.arguments),
                status="completed",
            )
            if call.name in custom
            else OutputFunctionCall(
                id=new_id("fc"),
                call_id=call.id,
                name=call.name,
                arguments=call.arguments,
                status="completed",
            )
        )
    response.usage = usage_object(usage)
    return response
