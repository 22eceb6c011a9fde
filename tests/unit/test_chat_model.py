"""The provider-neutral chat model: what a request needs from a provider, images, usage."""

from __future__ import annotations

import base64

from llmagents.chat import (
    Capability,
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)


def test_plain_chat_needs_no_capability() -> None:
    request = ChatRequest([Message(Role.USER, "hi")])
    assert request.required_capabilities() == frozenset()
    assert request.required_capabilities(stream=True) == {Capability.STREAMING}


def test_tools_in_the_request_or_the_history_need_tools() -> None:
    defined = ChatRequest([Message(Role.USER, "weather?")], tools=(Tool("get_weather"),))
    called = ChatRequest(
        [
            Message(Role.USER, "weather?"),
            Message(Role.ASSISTANT, tool_calls=(ToolCall("call_1", "get_weather", "{}"),)),
            Message(Role.TOOL, "sunny", tool_call_id="call_1", name="get_weather"),
        ]
    )
    assert defined.required_capabilities() == {Capability.TOOLS}
    assert called.required_capabilities() == {Capability.TOOLS}


def test_images_need_vision_and_schemas_need_json_schema() -> None:
    request = ChatRequest(
        [Message(Role.USER, (TextPart("what is this?"), ImagePart("https://x.test/a.png")))],
        response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema={"type": "object"}),
    )
    assert request.required_capabilities() == {Capability.VISION, Capability.JSON_SCHEMA}
    # JSON mode without a schema needs structured output too: a model without it (the
    # local sidecar) answers prose that the client then fails to parse.
    json_mode = ChatRequest(
        [Message(Role.USER, "x")], response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT)
    )
    assert json_mode.required_capabilities() == {Capability.JSON_SCHEMA}


def test_message_text_joins_text_parts_and_skips_images() -> None:
    message = Message(Role.USER, (TextPart("a"), ImagePart("https://x.test/i.png"), TextPart("b")))
    assert message.text == "ab"
    assert message.images == (ImagePart("https://x.test/i.png"),)
    assert Message(Role.USER, "plain").images == ()


def test_data_url_parts_decode_base64_and_refuse_the_rest() -> None:
    png = b"\x89PNG\r\n\x1a\n"
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert ImagePart(url).data_url_parts() == ("image/png", png)
    assert ImagePart("https://x.test/i.png").data_url_parts() is None
    assert ImagePart("data:image/png,rawtext").data_url_parts() is None
    assert ImagePart("data:image/png;base64,@@@").data_url_parts() is None


def test_usage_adds_cached_and_reasoning_tokens() -> None:
    total = Usage(10, 5, cached_input_tokens=4, reasoning_tokens=2) + Usage(1, 1, 1, 0)
    assert total == Usage(11, 6, 5, 2)
    assert total.total_tokens == 17
