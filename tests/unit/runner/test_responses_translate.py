"""The Responses API ↔ chat model translation, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmagents.chat import (
    ImagePart,
    ReasoningEffort,
    ResponseFormatType,
    Role,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from llmagents.runner.chat_path import Refusal
from llmagents.runner.responses_answer import response_object
from llmagents.runner.responses_stream import ResponsesStream
from llmagents.runner.responses_translate import parse_responses

ADD = {
    "type": "function",
    "name": "add",
    "description": "Adds.",
    "parameters": {"type": "object", "properties": {"a": {"type": "number"}}},
}
MUL = {"type": "function", "name": "mul", "parameters": {"type": "object"}, "strict": True}


def parse(body: dict[str, Any]) -> Any:
    return parse_responses(json.dumps({"model": "auto", **body}).encode())


def test_a_tool_loop_becomes_one_assistant_turn_with_parallel_calls_and_their_results() -> None:
    call = parse(
        {
            "instructions": "Use the tools.",
            "input": [
                {"role": "developer", "content": "Numbers are small."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "2+3 and 2*3?"}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "Let me compute.", "annotations": []}
                    ],
                },
                {
                    "type": "function_call",
                    "call_id": "call_a",
                    "name": "add",
                    "arguments": '{"a":2,"b":3}',
                    "id": "fc_1",
                    "status": "completed",
                },
                {"type": "function_call", "call_id": "toolu_b", "name": "mul", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "5"},
                {
                    "type": "function_call_output",
                    "call_id": "toolu_b",
                    "output": [{"type": "input_text", "text": "6"}],
                },
            ],
            "tools": [ADD, MUL],
            "tool_choice": "required",
            "parallel_tool_calls": True,
        }
    )
    messages = call.request.messages
    assert [m.role for m in messages] == [
        Role.SYSTEM,
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.TOOL,
    ]
    assert messages[0].content == "Use the tools." and messages[2].content == "2+3 and 2*3?"
    turn = messages[3]
    assert turn.content == "Let me compute."
    assert turn.tool_calls == (
        ToolCall("call_a", "add", '{"a":2,"b":3}'),
        ToolCall("toolu_b", "mul", "{}"),
    )
    assert (messages[4].tool_call_id, messages[4].name, messages[4].text) == ("call_a", "add", "5")
    assert (messages[5].tool_call_id, messages[5].name, messages[5].text) == ("toolu_b", "mul", "6")
    tools = call.request.tools
    assert [t.name for t in tools] == ["add", "mul"]
    assert tools[0].parameters == ADD["parameters"] and tools[1].strict is True
    assert call.request.tool_choice.mode is ToolChoiceMode.REQUIRED
    assert call.request.parallel_tool_calls is True


def test_images_json_schema_and_a_named_tool_choice_translate() -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    call = parse(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What colour?"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,iVBORw0KGgo=",
                            "detail": "low",
                        },
                    ],
                }
            ],
            "tools": [ADD],
            "tool_choice": {"type": "function", "name": "add"},
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "schema": schema,
                    "strict": True,
                }
            },
            "max_output_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
        }
    )
    content = call.request.messages[0].content
    assert content == (
        TextPart("What colour?"),
        ImagePart("data:image/png;base64,iVBORw0KGgo=", "low"),
    )
    form = call.request.response_format
    assert form.type is ResponseFormatType.JSON_SCHEMA and form.schema == schema
    assert (form.name, form.strict) == ("answer", True)
    choice = call.request.tool_choice
    assert (choice.mode, choice.name) == (ToolChoiceMode.REQUIRED, "add")
    assert (call.request.max_tokens, call.request.temperature, call.request.top_p) == (64, 0.2, 0.9)


def test_an_answer_with_text_and_calls_is_a_message_then_function_call_items() -> None:
    wire = parse({"input": "hi", "tools": [ADD]}).wire
    body = response_object(
        wire,
        text="Adding.",
        tool_calls=[ToolCall("call_1", "add", "{}")],
        usage=Usage(10, 4, cached_input_tokens=3, reasoning_tokens=1),
        finish_reason="tool_calls",
        model="m",
    ).document()
    response = Response.model_validate(body)  # the SDK's own model, strictly
    assert response.status == "completed" and response.output_text == "Adding."
    assert [item.type for item in response.output] == ["message", "function_call"]
    call = response.output[1]
    assert (call.call_id, call.name, call.arguments) == ("call_1", "add", "{}")
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.usage.output_tokens_details.reasoning_tokens == 1
    assert response.usage.total_tokens == 14 and response.tools[0].name == "add"


def test_an_answer_cut_by_the_token_limit_is_incomplete() -> None:
    wire = parse({"input": "hi", "max_output_tokens": 5}).wire
    body = response_object(
        wire, text="Once upon", tool_calls=[], usage=Usage(3, 5), finish_reason="length", model="m"
    ).document()
    response = Response.model_validate(body)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"


def _events(stream: bytes) -> list[ResponseStreamEvent]:
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    events = []
    for block in stream.decode().split("\n\n"):
        if block:
            name, data = block.split("\n")
            event = adapter.validate_json(data.removeprefix("data: "))
            assert name == f"event: {event.type}"
            events.append(event)
    return events


def test_streamed_text_then_parallel_calls_follow_openais_event_order() -> None:
    wire = parse({"input": "hi", "tools": [ADD, MUL]}).wire
    writer = ResponsesStream(wire, "m")
    raw = writer.start() + writer.text("Let me ") + writer.text("add.")
    raw += writer.tool_call(ToolCallDelta(0, id="call_1", name="add"))
    raw += writer.tool_call(ToolCallDelta(0, arguments='{"a":'))
    raw += writer.tool_call(ToolCallDelta(0, arguments="1}"))
    raw += writer.tool_call(ToolCallDelta(1, id="call_2", name="mul", arguments="{}"))
    raw += writer.end("tool_calls", Usage(7, 9))
    events = _events(raw)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(e.output_index, e.arguments) for e in done] == [(1, '{"a":1}'), (2, "{}")]
    final = events[-1].response
    assert final.output_text == "Let me add."
    assert [(o.type, getattr(o, "call_id", None)) for o in final.output] == [
        ("message", None),
        ("function_call", "call_1"),
        ("function_call", "call_2"),
    ]
    assert final.usage.total_tokens == 16


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_a_stream_cut_short_ends_with_response_incomplete(reason: str) -> None:
    writer = ResponsesStream(parse({"input": "hi"}).wire, "m")
    events = _events(writer.start() + writer.text("Once") + writer.end(reason, Usage(1, 1)))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output[0].status == "incomplete"


def test_fields_chat_completions_also_take_ride_along_for_openai_compatible_providers() -> None:
    call = parse({"input": "hi", "reasoning": {"effort": "low", "summary": "auto"},
                  "prompt_cache_key": "k1", "user": "u1", "include": ["x"], "metadata": {"a": "b"}})  # fmt: skip
    assert call.request.passthrough == {"openai": {"prompt_cache_key": "k1", "user": "u1"}}
    assert call.request.reasoning_effort is ReasoningEffort.LOW  # every adapter's, translated
    assert parse({"input": "hi"}).request.passthrough == {}


PATCH = {"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}  # fmt: skip


def test_custom_tools_become_functions_of_one_string_and_their_calls_come_back_as_text() -> None:
    call = parse({
        "input": [
            {"role": "user", "content": "Fix it"},
            {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch",
             "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done"},
        ],
        "tools": [PATCH, ADD],
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    })  # fmt: skip
    tool = call.request.tools[0]
    assert tool.name == "apply_patch" and tool.parameters["required"] == ["input"]
    assert "lark grammar:\nstart: /.+/" in (tool.description or "")
    assert call.request.messages[1].tool_calls == (
        ToolCall("call_p", "apply_patch", json.dumps({"input": "*** Begin Patch"})),
    )
    assert (call.request.messages[2].role, call.request.messages[2].text) == (Role.TOOL, "Done")
    assert call.request.tool_choice.name == "apply_patch"

    body = response_object(call.wire, text="", usage=Usage(5, 5), finish_reason="tool_calls",
                           model="m", tool_calls=[
                               ToolCall("call_q", "apply_patch", '{"input": "*** End Patch"}'),
                               ToolCall("call_r", "add", '{"a": 1}')]).document()  # fmt: skip
    response = Response.model_validate(body)
    patch, add = response.output
    assert (patch.type, patch.call_id, patch.input) == (
        "custom_tool_call",
        "call_q",
        "*** End Patch",
    )
    assert (add.type, add.arguments) == ("function_call", '{"a": 1}')


def test_a_streamed_custom_call_sends_its_input_whole_when_it_closes() -> None:
    writer = ResponsesStream(parse({"input": "x", "tools": [PATCH]}).wire, "m")
    raw = writer.start()
    raw += writer.tool_call(ToolCallDelta(0, id="call_p", name="apply_patch"))
    for piece in ('{"inp', 'ut": "*** Be', 'gin Patch"}'):
        raw += writer.tool_call(ToolCallDelta(0, arguments=piece))
    raw += writer.end("tool_calls", Usage(1, 1))
    events = _events(raw)
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert events[3].delta == events[4].input == "*** Begin Patch"
    assert events[-1].response.output[0].input == "*** Begin Patch"


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_a_tool_choice_that_demands_nothing_is_taken_without_tools(choice: str) -> None:
    """OpenAI's API takes ``tool_choice: "auto"`` beside an empty ``tools`` (an agent of
    the Agents SDK with no tools and a tool_choice in its settings sends just that)."""
    call = parse({"input": "hi", "tools": [], "tool_choice": choice})
    assert call.request.tools == () or not call.request.tools
    assert call.request.tool_choice is not None
    assert call.request.tool_choice.mode is ToolChoiceMode(choice)


def test_a_demanded_call_without_tools_is_refused() -> None:
    with pytest.raises(Refusal) as refused:
        parse({"input": "hi", "tool_choice": "required"})
    assert (refused.value.status, refused.value.param) == (400, "tool_choice")


@pytest.mark.parametrize(
    "field",
    [{"top_logprobs": 2}, {"include": ["message.output_text.logprobs"]}],
    ids=["top_logprobs", "include-logprobs"],
)
def test_logprobs_no_answer_carries_are_refused_not_silently_left_out(
    field: dict[str, Any],
) -> None:
    with pytest.raises(Refusal) as refused:
        parse({"input": "hi", **field})
    assert refused.value.status == 400 and "log probabilities" in refused.value.message


def test_what_sdks_send_by_default_about_logprobs_is_taken() -> None:
    parse({"input": "hi", "top_logprobs": 0, "include": ["reasoning.encrypted_content"]})
