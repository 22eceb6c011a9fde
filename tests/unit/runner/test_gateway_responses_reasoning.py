"""Reasoning through ``/v1/responses``, read by OpenAI's SDK: what the provider showed of its
reasoning comes back as ``reasoning`` output items with a ``summary_text`` summary, whole or
streamed as OpenAI streams reasoning summaries, and a client may send the items back."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.responses import ResponseReasoningItem

from llmagents.chat import Reasoning, Usage
from llmagents.runner.lifecycle import Runner
from llmagents.runner.responses_answer import response_object
from llmagents.runner.responses_translate import parse_responses

ASK = "Why is the sky blue?"
THOUGHT = f"Let me think about: {ASK}"  # what the fake OpenAI-compatible server reasons


def _client(origin: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{origin}/v1", api_key="k", max_retries=0)


async def test_reasoning_is_a_reasoning_item_before_the_message_and_may_be_sent_back(
    served: tuple[Runner, str],
) -> None:
    _, origin = served
    async with _client(origin) as client:
        response = await client.responses.create(
            model="auto", input=ASK, reasoning={"effort": "low"}, store=False
        )
        reasoning = response.output[0]
        assert isinstance(reasoning, ResponseReasoningItem)
        assert [s.model_dump() for s in reasoning.summary] == [
            {"type": "summary_text", "text": THOUGHT}
        ]
        assert [o.type for o in response.output] == ["reasoning", "message"]
        assert response.output_text.startswith("[fake-openai:gpt-4o-mini] answer to:")

        # The Agents SDK sends the output back as input in the next turn (store: false).
        history: list[Any] = [{"role": "user", "content": ASK}]
        history += [o.model_dump(exclude_none=True) for o in response.output]
        history.append({"role": "user", "content": "And at sunset?"})
        second = await client.responses.create(model="auto", input=history, store=False)
    assert [o.type for o in second.output] == ["message"]  # no reasoning asked this time


async def test_streamed_reasoning_arrives_as_reasoning_summary_events(
    served: tuple[Runner, str],
) -> None:
    _, origin = served
    async with (
        _client(origin) as client,
        client.responses.stream(model="auto", input=ASK, reasoning={"effort": "low"}) as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_response()

    kinds = [e.type for e in events]
    first_text = kinds.index("response.output_text.delta")
    assert kinds[: kinds.index("response.reasoning_summary_text.delta")] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
    ]
    assert kinds[kinds.index("response.reasoning_summary_text.done") : first_text] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]
    deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == THOUGHT
    assert [e.sequence_number for e in events] == list(range(len(events)))
    reasoning = final.output[0]
    assert isinstance(reasoning, ResponseReasoningItem) and reasoning.status == "completed"
    assert reasoning.summary[0].text == THOUGHT
    assert [o.type for o in final.output] == ["reasoning", "message"]


def test_each_block_of_visible_reasoning_is_an_item_and_no_signature_is_shown() -> None:
    wire = parse_responses(b'{"model": "m", "input": "hi"}').wire
    response = response_object(
        wire, text="answer", tool_calls=(), usage=Usage(1, 1), finish_reason="stop", model="m",
        reasoning=[Reasoning("first", signature="sig", provider="claude"),
                   Reasoning(redacted="opaque", provider="claude"),
                   Reasoning("second", provider="vllm")],
    )  # fmt: skip
    items = [o.model_dump(mode="json") for o in response.output]
    assert [(i["type"], i.get("summary")) for i in items] == [
        ("reasoning", [{"type": "summary_text", "text": "first"}]),
        ("reasoning", [{"type": "summary_text", "text": "second"}]),
        ("message", None),
    ]
    assert "sig" not in str(items) and "opaque" not in str(items)
