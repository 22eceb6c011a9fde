"""The Messages API ↔ chat model translation, without a server."""

from __future__ import annotations

import json
from typing import Any

from anthropic.types import Message as SdkMessage
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from llmagents.chat import (
    ImagePart,
    Reasoning,
    Role,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from llmagents.runner.messages_stream import MessagesStream
from llmagents.runner.messages_translate import message_object, parse_messages

WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def parse(body: dict[str, Any]) -> Any:
    return parse_messages(json.dumps({"model": "m", "max_tokens": 100, **body}).encode())


def test_tool_use_and_tool_result_blocks_become_tool_calls_and_tool_messages() -> None:
    call = parse(
        {
            "system": [{"type": "text", "text": "Use tools."}],
            "messages": [
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "two cities", "signature": "sig"},
                        {"type": "text", "text": "Checking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "call_2",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "is_error": True,
                            "content": [{"type": "text", "text": "timeout"}],
                        },
                        {"type": "text", "text": "Thanks."},
                    ],
                },
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_k": 5,
        }
    )
    messages = call.request.messages
    assert [m.role for m in messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.TOOL,
        Role.USER,
    ]
    assert messages[0].content == "Use tools."
    assert messages[2].content == "Checking."
    assert messages[2].tool_calls == (
        ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", '{"city": "Oslo"}'),
    )
    assert (messages[3].tool_call_id, messages[3].name, messages[3].text) == (
        "toolu_1",
        "get_weather",
        "18C",
    )
    assert messages[4].text == "Error: timeout"
    assert messages[5].content == "Thanks."
    request = call.request
    assert request.tools[0].parameters == WEATHER["input_schema"]
    assert request.tool_choice.mode is ToolChoiceMode.REQUIRED
    assert request.parallel_tool_calls is False
    assert (request.stop, request.temperature, request.max_tokens) == (["END"], 0.5, 100)


def test_images_by_base64_and_url_become_image_parts() -> None:
    call = parse(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0KGgo=",
                            },
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/a.jpg"},
                        },
                        {"type": "text", "text": "Same picture?"},
                    ],
                }
            ]
        }
    )
    assert call.request.messages[0].content == (
        ImagePart("data:image/png;base64,iVBORw0KGgo="),
        ImagePart("https://example.com/a.jpg"),
        TextPart("Same picture?"),
    )


def test_an_answer_with_text_and_calls_reads_as_the_sdks_message() -> None:
    body = message_object(
        "Checking.",
        [ToolCall("call_9", "get_weather", '{"city":"Oslo"}')],
        usage=Usage(20, 7, cached_input_tokens=5),
        finish_reason="tool_calls",
        model="gpt-4.1",
    ).model_dump(mode="json")
    message = SdkMessage.model_validate(body)
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Oslo"} and message.content[1].id == "call_9"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (15, 5)


def _events(raw: bytes) -> list[Any]:
    adapter: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
    events = []
    for block in raw.decode().split("\n\n"):
        if block:
            name, data = block.split("\n")
            if name == "event: ping":
                continue
            event = adapter.validate_json(data.removeprefix("data: "))
            assert name == f"event: {event.type}"
            events.append(event)
    return events


def test_streamed_text_then_a_tool_call_follow_anthropics_event_order() -> None:
    writer = MessagesStream("gpt-4.1", input_estimate=10)
    raw = writer.start() + writer.chunk(StreamChunk(text="Checking."))
    raw += writer.chunk(
        StreamChunk(tool_calls=(ToolCallDelta(0, id="call_1", name="get_weather"),))
    )
    raw += writer.chunk(StreamChunk(tool_calls=(ToolCallDelta(0, arguments='{"city":'),)))
    raw += writer.chunk(StreamChunk(tool_calls=(ToolCallDelta(0, arguments='"Oslo"}'),)))
    raw += writer.end("tool_calls", Usage(12, 9))
    events = _events(raw)
    assert [(e.type, getattr(e, "index", None)) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[4].content_block.id == "call_1"
    assert "".join(e.delta.partial_json for e in events[5:7]) == '{"city":"Oslo"}'
    assert events[0].message.usage.input_tokens == 10  # the estimate, until message_delta
    assert events[8].delta.stop_reason == "tool_use"
    assert (events[8].usage.input_tokens, events[8].usage.output_tokens) == (12, 9)


def test_streamed_thinking_comes_first_signed_redacted_and_unsigned_blocks_alike() -> None:
    writer = MessagesStream("claude", input_estimate=10)
    raw = writer.start()
    for chunk in (
        StreamChunk(reasoning="Let me "),
        StreamChunk(reasoning="think."),
        StreamChunk(reasoning_end=Reasoning(signature="sig", provider="claude")),
        StreamChunk(reasoning_end=Reasoning(redacted="opaque", provider="claude")),
        StreamChunk(reasoning="shown only"),  # another protocol's: no signature follows
        StreamChunk(text="Blue."),
    ):
        raw += writer.chunk(chunk)
    events = _events(raw + writer.end("stop", Usage(12, 9)))
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert [b.type for b in starts] == ["thinking", "redacted_thinking", "thinking", "text"]
    assert starts[1].data == "llmagents~claude~opaque"
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert [d.type for d in deltas] == [
        "thinking_delta", "thinking_delta", "signature_delta", "thinking_delta", "text_delta",
    ]  # fmt: skip
    assert deltas[2].signature == "llmagents~claude~sig"
    stops = [e.index for e in events if e.type == "content_block_stop"]
    assert stops == [0, 1, 2, 3]


def test_sampling_metadata_and_thinking_ride_along_for_anthropic() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2000}
    call = parse({"messages": [{"role": "user", "content": "hi"}], "top_k": 5, "max_tokens": 4096,
                  "metadata": {"user_id": "u1"}, "thinking": thinking})  # fmt: skip
    assert call.request.passthrough == {
        "anthropic": {"metadata": {"user_id": "u1"}, "thinking": thinking, "top_k": 5}
    }


def test_thinking_reaches_the_client_tagged_with_its_provider_and_comes_back_untagged() -> None:
    answer = message_object(
        "", [], usage=Usage(1, 1), finish_reason="stop", model="m",
        reasoning=[Reasoning("hmm", signature="sig+/=", provider="claude"),
                   Reasoning(redacted="opaque", provider="claude"),
                   Reasoning("shown", provider="vllm")],
    )  # fmt: skip
    blocks = [b.model_dump() for b in answer.content]
    assert blocks == [
        {"type": "thinking", "thinking": "hmm", "signature": "llmagents~claude~sig+/="},
        {"type": "redacted_thinking", "data": "llmagents~claude~opaque"},
        {"type": "thinking", "thinking": "shown", "signature": ""},
    ]
    call = parse({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [*blocks, {"type": "text", "text": "ok"}]},
        {"role": "user", "content": "again"},
    ]})  # fmt: skip
    assert call.request.messages[1].reasoning == (
        Reasoning("hmm", signature="sig+/=", provider="claude"),
        Reasoning(redacted="opaque", provider="claude"),
    )  # the unsigned block verifies nowhere: left out
    foreign = parse({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t",
                                           "signature": "from-anthropic-directly"}]},
        {"role": "user", "content": "again"},
    ]})  # fmt: skip
    assert foreign.request.messages[1].reasoning == (
        Reasoning("t", signature="from-anthropic-directly", provider=None),
    )
