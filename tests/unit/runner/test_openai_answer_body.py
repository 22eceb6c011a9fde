"""The OpenAI front door's whole answer is written from plain data: byte for byte what
``wire.ChatCompletion`` writes for it."""

from __future__ import annotations

import json

import pytest

from llmagents.chat import ChatResponse, Reasoning, ToolCall, Usage
from llmagents.runner import reasoning_tags
from llmagents.runner.openai_chat import completion
from llmagents.wire import openai_chat as wire

ANSWERS = {
    "plain": ChatResponse(text="2, 3 and 5.", usage=Usage(20, 7), model="m", finish_reason="stop"),
    "no finish reason": ChatResponse(text="x", usage=Usage(1, 1), model="m"),
    "tool calls": ChatResponse(
        text="",
        usage=Usage(30, 12, cached_input_tokens=8),
        model="m",
        finish_reason="tool_calls",
        tool_calls=(
            ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
            ToolCall("call_2", "get_time", "{}"),
        ),
    ),
    "text beside a call": ChatResponse(
        text="Let me look.",
        usage=Usage(3, 4),
        model="m",
        tool_calls=(ToolCall("c", "f", ""),),
    ),
    "reasoning": ChatResponse(
        text="42",
        usage=Usage(5, 9, reasoning_tokens=7),
        model="m",
        finish_reason="length",
        reasoning=(Reasoning('thinking "hard"\n', provider="p"),),
    ),
    "signed reasoning": ChatResponse(
        text="ok",
        usage=Usage(5, 9),
        model="m",
        reasoning=(
            Reasoning("a thought", signature="c2ln", provider="claude"),
            Reasoning(redacted="ZW5j", provider="claude"),
        ),
    ),
    "unicode": ChatResponse(text="Grüße, 世界 \u2028 🎉 </script>", usage=Usage(1, 2), model="ü"),
    "empty": ChatResponse(text="", usage=Usage(0, 0), model=""),
}


def _by_the_model(answer: ChatResponse, cid: str, created: int) -> bytes:
    calls = [
        wire.AnswerToolCall(id=c.id, function=wire.AnswerFunctionCall(name=c.name,
                                                                      arguments=c.arguments))
        for c in answer.tool_calls
    ]  # fmt: skip
    message = wire.AnswerMessage(content=answer.text if answer.text or not calls else None,
                                 tool_calls=calls or None,
                                 reasoning_content=answer.reasoning_text or None,
                                 reasoning_details=reasoning_tags.details(answer.reasoning)
                                 or None)  # fmt: skip
    usage = answer.usage
    return wire.ChatCompletion(
        id=cid, created=created, model=answer.model,
        choices=[wire.Choice(message=message, finish_reason=answer.finish_reason or "stop")],
        usage=wire.CompletionUsage(
            prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            prompt_tokens_details=wire.PromptTokensDetails(cached_tokens=usage.cached_input_tokens),
            completion_tokens_details=wire.CompletionTokensDetails(
                reasoning_tokens=usage.reasoning_tokens),
        ),
    ).model_dump_json().encode()  # fmt: skip


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_the_answer_body_is_what_the_wire_model_writes(name: str) -> None:
    answer = ANSWERS[name]
    body = completion(answer, cid="chatcmpl-abc")
    created = json.loads(body)["created"]
    assert body == _by_the_model(answer, "chatcmpl-abc", created)
    assert wire.ChatCompletion.model_validate_json(body).model_dump_json().encode() == body
