"""The official ``openai`` SDK against the gateway, in front of fakes of all three protocols,
with fallbacks forced in the middle of conversations: tools (parallel calls), streamed tool
calls, structured output parsed into a pydantic model, images; capability routing and
model selection as a client sees them."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from .conftest import Pod

TOOLS: list[Any] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
]  # fmt: skip
ASK = {"role": "user", "content": "Use get_weather and get_time for Paris"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def _results(calls: list[Any]) -> list[dict[str, Any]]:
    canned = {"get_weather": "sunny, 21 C", "get_time": '{"time": "14:05"}'}
    return [{"role": "tool", "tool_call_id": c.id, "content": canned[c.function.name]}
            for c in calls]  # fmt: skip


async def test_a_tool_conversation_begun_on_anthropic_continues_on_openai_then_gemini(
    pod: Pod,
) -> None:
    client = pod.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=[ASK], tools=TOOLS
    )
    first = raw.parse()
    assert raw.headers["x-llmagents-provider"] == "claude"
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # in parallel
    assert all(c.id.startswith("toolu_") for c in calls)  # Anthropic's ids, as they came
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}

    history = [ASK, first.choices[0].message.model_dump(exclude_none=True), *_results(calls)]
    pod.down(pod.claude)
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=history, tools=TOOLS
    )
    second = raw.parse()
    assert raw.headers["x-llmagents-provider"] == "gpt"
    text = second.choices[0].message.content
    assert text.startswith("[fake-openai:gpt-4.1] tool results:") and "14:05" in text

    pod.down(pod.gpt)
    history += [second.choices[0].message.model_dump(exclude_none=True),
                {"role": "user", "content": "Now use get_weather for Lyon"}]  # fmt: skip
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=history, tools=TOOLS
    )
    third = raw.parse()
    assert raw.headers["x-llmagents-provider"] == "gemini"
    [call] = third.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Lyon"}


async def test_streamed_tool_calls_accumulate_in_the_sdk_across_a_fallback(pod: Pod) -> None:
    client = pod.client()
    async with client.chat.completions.stream(model="auto", messages=[ASK], tools=TOOLS) as s:
        async for _ in s:
            pass
        first = await s.get_final_completion()
    calls = first.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1].function.arguments) == {"city": "Paris"}
    assert first.choices[0].finish_reason == "tool_calls"

    pod.down(pod.claude, pod.gpt)  # the answer to the calls comes from Gemini
    history = [ASK, first.choices[0].message.model_dump(exclude_none=True), *_results(calls)]
    stream = await client.chat.completions.create(
        model="auto", messages=history, tools=TOOLS, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[fake-gemini:gemini-2.5-flash] tool results:") and "sunny" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


class Landmark(BaseModel):
    name: str
    year: int


class City(BaseModel):
    name: str
    landmarks: list[Landmark]
    capital: bool


@pytest.mark.parametrize("down", [(), ("claude",), ("claude", "gpt")])
async def test_structured_output_parses_into_the_model_from_every_provider(
    pod: Pod, down: tuple[str, ...]
) -> None:
    pod.down(*(getattr(pod, name) for name in down))
    client = pod.client()
    raw = await client.chat.completions.with_raw_response.parse(
        model="auto", response_format=City,
        messages=[{"role": "user", "content": "Describe Paris, the capital of France"}],
    )  # fmt: skip
    answer = raw.parse()
    city = answer.choices[0].message.parsed
    assert isinstance(city, City) and city.landmarks and isinstance(city.capital, bool)
    assert raw.headers["x-llmagents-provider"] == ["claude", "gpt", "gemini"][len(down)]


async def test_an_image_goes_to_providers_with_vision_and_skips_the_one_without(
    pod: Pod,
) -> None:
    message = {"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]}  # fmt: skip
    client = pod.client()
    answer = await client.chat.completions.create(model="auto", messages=[message])
    assert answer.choices[0].message.content.endswith("(saw 1 image/png image)")
    assert answer.choices[0].message.content.startswith("[fake-anthropic")

    pod.down(pod.claude)
    raw = await client.chat.completions.with_raw_response.create(model="auto",
                                                                 messages=[message])  # fmt: skip
    assert raw.headers["x-llmagents-provider"] == "gemini"  # gpt lacks vision: skipped
    assert raw.parse().choices[0].message.content.endswith("(saw 1 image/png image)")
    assert pod.gpt.stats.requests == 0

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt", messages=[message])
    assert caught.value.code == "capability_unavailable"
    assert "vision" in caught.value.message and "gpt" in caught.value.message
    assert pod.gpt.stats.requests == 0
    assert pod.runner.engine.manager.status()["gpt"].misconfigured is None


async def test_the_model_names_a_provider_a_model_or_an_alias(pod: Pod) -> None:
    client = pod.client()
    hello = [{"role": "user", "content": "Hello there"}]
    for model, provider in (("gemini", "gemini"), ("gpt-4.1", "gpt"), ("smart", "claude"),
                            ("gpt-4o", "claude")):  # fmt: skip
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=hello)
        assert raw.headers["x-llmagents-provider"] == provider, model
    pod.down(pod.claude)
    raw = await client.chat.completions.with_raw_response.create(model="smart", messages=hello)
    assert raw.headers["x-llmagents-provider"] == "gemini"  # the alias's, not gpt

    listed = {m.id: m for m in (await client.models.list()).data}
    assert {"claude-haiku-4-5", "gpt-4.1", "gemini-2.5-flash", "claude", "smart"} <= set(listed)
    assert listed["gpt"].model_extra["capabilities"] == ["jsonSchema", "streaming", "tools"]
    assert listed["smart"].model_extra["providers"] == ["claude", "gemini"]
