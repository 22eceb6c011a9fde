"""Tools, structured output and images through each adapter, against its protocol's fake.

The fakes validate requests with the same wire models and check what the real services
check about tool calls (a result answers a call made just before it; Anthropic's id
pattern; OpenAI's 40-character id limit), so a translation that loses or garbles a tool
call, an id or an image fails here.
"""

from __future__ import annotations

import base64
import json

import pytest

from llmagents.chat import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from llmagents.errors import ProviderError, RequestRefused
from llmagents.providers import GeminiAdapter
from llmagents.testing.fake_providers import FakeGemini, FaultPlan

from .conftest import API_KEY, Pair

WEATHER = Tool("get_weather", "Current weather in a city.", {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False,
})  # fmt: skip
TIME = Tool("get_time", "Local time in a city.", {
    "type": "object", "properties": {"city": {"type": "string"},
                                     "hours24": {"type": ["boolean", "null"]}},
    "required": ["city", "hours24"],
})  # fmt: skip
ASK_TOOLS = ChatRequest(
    [Message(Role.USER, "Use get_weather and get_time for Paris please")], tools=(WEATHER, TIME)
)
# Ids as three providers make them, one of which fits neither Anthropic's pattern nor
# OpenAI's length: each adapter must carry the history across anyway.
FOREIGN_IDS = ("toolu_01A09q90qw90lq917835lq9", "call_abc123",
               "functions.get_weather:0/" + "x" * 50,
               "call_abc\n")  # a trailing newline: Python's ``$`` would let it pass  # fmt: skip
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def _assemble(chunks: list) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["arguments"] += delta.arguments
    return calls


async def test_parallel_tool_calls_come_back_with_ids_names_and_valid_arguments(
    pair: Pair,
) -> None:
    answer = await pair.adapter.complete(ASK_TOOLS, timeout=2.0)

    assert answer.finish_reason == "tool_calls"
    assert [c.name for c in answer.tool_calls] == ["get_weather", "get_time"]
    assert json.loads(answer.tool_calls[0].arguments) == {"city": "Paris"}
    assert json.loads(answer.tool_calls[1].arguments) == {"city": "Paris", "hours24": True}
    ids = [c.id for c in answer.tool_calls]
    assert all(ids) and len(set(ids)) == 2
    assert answer.usage.output_tokens > 0


async def test_streamed_tool_calls_assemble_into_the_same_calls(pair: Pair) -> None:
    chunks = [c async for c in pair.adapter.stream(ASK_TOOLS, timeout=2.0)]

    calls = _assemble(chunks)
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert all(c["id"] for c in calls.values())
    assert chunks[-1].finish_reason == "tool_calls" and chunks[-1].usage is not None


async def test_parallel_calls_off_and_a_forced_function_are_honoured(pair: Pair) -> None:
    single = ChatRequest(ASK_TOOLS.messages, tools=ASK_TOOLS.tools, parallel_tool_calls=False)
    calls = (await pair.adapter.complete(single, timeout=2.0)).tool_calls
    assert len(calls) == (2 if pair.protocol == "gemini" else 1)  # Gemini has no such switch

    forced = ChatRequest(
        [Message(Role.USER, "What time is it in Lisbon?")], tools=(WEATHER, TIME),
        tool_choice=ToolChoice(ToolChoiceMode.REQUIRED, "get_time"),
    )  # fmt: skip
    answer = await pair.adapter.complete(forced, timeout=2.0)
    assert [c.name for c in answer.tool_calls] == ["get_time"]
    assert json.loads(answer.tool_calls[0].arguments)["city"] == "Lisbon"

    none = ChatRequest(ASK_TOOLS.messages, tools=ASK_TOOLS.tools,
                       tool_choice=ToolChoice(ToolChoiceMode.NONE))  # fmt: skip
    answer = await pair.adapter.complete(none, timeout=2.0)
    assert answer.tool_calls == () and answer.text


@pytest.mark.parametrize("foreign_id", FOREIGN_IDS)
async def test_a_history_of_calls_made_elsewhere_continues_here(
    pair: Pair, foreign_id: str
) -> None:
    history = ChatRequest(
        [
            Message(Role.SYSTEM, "Use tools."),
            Message(Role.USER, "Use get_weather and get_time for Paris"),
            Message(Role.ASSISTANT, "", tool_calls=(
                ToolCall(foreign_id, "get_weather", '{"city":"Paris"}'),
                ToolCall(foreign_id + "2", "get_time", '{"city":"Paris","hours24":true}'),
            )),
            Message(Role.TOOL, "sunny, 21 C", tool_call_id=foreign_id),
            Message(Role.TOOL, '{"time": "14:05"}', tool_call_id=foreign_id + "2"),
        ],
        tools=(WEATHER, TIME),
    )  # fmt: skip
    answer = await pair.adapter.complete(history, timeout=2.0)

    assert answer.tool_calls == ()
    assert "tool results:" in answer.text and "sunny, 21 C" in answer.text
    assert "14:05" in answer.text
    assert answer.finish_reason == "stop"


async def test_structured_output_is_json_valid_for_the_schema(pair: Pair) -> None:
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}, "population": {"type": "integer"},
                       "landmarks": {"type": "array", "items": {"$ref": "#/$defs/Landmark"}}},
        "required": ["capital", "population", "landmarks"],
        "additionalProperties": False,
        "$defs": {"Landmark": {"type": "object", "properties": {"name": {"type": "string"}},
                               "required": ["name"], "additionalProperties": False}},
    }  # fmt: skip
    request = ChatRequest(
        [Message(Role.USER, "Describe the capital of France, Paris")],
        response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema, "city", True),
    )
    answer = await pair.adapter.complete(request, timeout=2.0)
    document = json.loads(answer.text)
    assert set(document) == {"capital", "population", "landmarks"}
    assert isinstance(document["population"], int) and document["landmarks"][0]["name"]
    assert answer.finish_reason == "stop" and answer.tool_calls == ()

    streamed = [c async for c in pair.adapter.stream(request, timeout=2.0)]
    assert json.loads("".join(c.text for c in streamed)).keys() == document.keys()
    assert streamed[-1].finish_reason == "stop"


async def test_an_image_reaches_the_provider_in_its_own_form(pair: Pair) -> None:
    request = ChatRequest([Message(Role.USER, (
        TextPart("What is in this picture?"), ImagePart(f"data:image/png;base64,{PNG}"),
    ))])  # fmt: skip
    answer = await pair.adapter.complete(request, timeout=2.0)
    assert answer.text.endswith("(saw 1 image/png image)")


async def test_a_tool_call_stream_cut_mid_arguments_raises_after_what_arrived(pair: Pair) -> None:
    pair.fake.faults = FaultPlan.model_validate({"script": ["stream_error"],
                                                 "stream_break_after": 1})  # fmt: skip
    received = []
    with pytest.raises(ProviderError):
        async for chunk in pair.adapter.stream(ASK_TOOLS, timeout=2.0):
            received.append(chunk)
    assert received and received[0].tool_calls and received[0].tool_calls[0].name
    assert all(c.finish_reason is None for c in received)


async def test_gemini_3_gets_back_its_thought_signatures_and_a_stand_in_for_foreign_calls() -> None:
    async with FakeGemini(api_key=API_KEY) as fake:

        def adapter() -> GeminiAdapter:
            return GeminiAdapter(name="g3", model="gemini-3-pro-preview", base_url=fake.base_url,
                                 api_key=API_KEY)  # fmt: skip

        async with adapter() as gemini:
            first = await gemini.complete(ASK_TOOLS, timeout=2.0)
            assert [c.name for c in first.tool_calls] == ["get_weather", "get_time"]
            results = [
                Message(Role.TOOL, "sunny", tool_call_id=first.tool_calls[0].id),
                Message(Role.TOOL, "14:05", tool_call_id=first.tool_calls[1].id),
            ]
            history = ChatRequest([*ASK_TOOLS.messages,
                                   Message(Role.ASSISTANT, "", tool_calls=first.tool_calls),
                                   *results], tools=ASK_TOOLS.tools)  # fmt: skip
            # The fake refuses the history unless the first call carries the signature it
            # gave; a forged one fails the same way, so this one was carried back.
            answer = await gemini.complete(history, timeout=2.0)
            assert "sunny" in answer.text and "14:05" in answer.text

        # Another provider's calls (or a runner restarted since) carry the stand-in.
        async with adapter() as fresh:
            answer = await fresh.complete(history, timeout=2.0)
            assert "sunny" in answer.text and "14:05" in answer.text
        forged = GeminiAdapter(name="g3", model="gemini-3-pro-preview",
                               base_url=fake.base_url, api_key=API_KEY)  # fmt: skip
        forged._remember(first.tool_calls[0].id, "Zm9yZ2Vk")
        with pytest.raises(RequestRefused, match="thought_signature"):
            await forged.complete(history, timeout=2.0)
        await forged.aclose()


def test_anthropic_tool_choice_none_stays_none_when_parallel_calls_are_off() -> None:
    from llmagents.providers import AnthropicAdapter

    adapter = AnthropicAdapter(name="a", model="m", base_url="https://x", api_key="k")
    request = ChatRequest(ASK_TOOLS.messages, tools=ASK_TOOLS.tools, parallel_tool_calls=False,
                          tool_choice=ToolChoice(ToolChoiceMode.NONE))  # fmt: skip
    assert adapter._payload(request, stream=False)["tool_choice"] == {"type": "none"}
    request.tool_choice = None
    assert adapter._payload(request, stream=False)["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}  # fmt: skip


async def test_what_strict_json_cannot_hold_never_leaves_the_adapter(pair: Pair) -> None:
    from llmagents.errors import RequestNotEncodable

    nan = Tool("f", None, {"type": "object", "properties": {"x": {"default": float("nan")}}})
    for request in (
        ChatRequest([Message(Role.USER, "call f")], tools=(nan,)),
        ChatRequest([Message(Role.USER, "lone \ud800 surrogate")]),
    ):
        with pytest.raises(RequestNotEncodable, match="strict JSON"):
            await pair.adapter.complete(request, timeout=2.0)
        with pytest.raises(RequestNotEncodable):
            async for _ in pair.adapter.stream(request, timeout=2.0):
                pass
    assert pair.fake.stats.requests == 0
