"""``POST /v1/responses``, spoken to by OpenAI's own client, with real fake providers behind."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from llmagents.runner.lifecycle import Runner

from .conftest import Fakes, openai_client


async def test_a_response_falls_back_and_is_charged(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"outage": True})
    raw = await openai_client(url).responses.with_raw_response.create(
        model="auto",
        instructions="Be brief.",
        input="Name three colours of the rainbow",
        store=False,
    )
    response = raw.parse()
    assert raw.headers["x-llmagents-provider"] == "fallback"
    assert response.status == "completed" and response.store is False
    assert response.output_text.startswith("[fake-openai:gpt-4.1] answer to: Name three")
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    spend = runner.engine.manager.spend_by_provider["fallback"]
    assert response.usage is not None
    assert spend.output_tokens == response.usage.output_tokens
    assert spend.input_tokens == response.usage.input_tokens
    assert response.usage.total_tokens == spend.input_tokens + spend.output_tokens
    assert float(raw.headers["x-llmagents-cost-usd"]) == pytest.approx(spend.cost)


async def test_a_streamed_response_sends_openais_events_in_order(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"script": ["503"]})
    stream = await openai_client(url).responses.create(
        model="auto", input=[{"role": "user", "content": "Name three colours"}], stream=True
    )
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert {k for k in kinds[4:-4]} == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("[fake-openai:gpt-4.1] answer to: Name three colours")
    completed = events[-1].response
    assert completed.output_text == text and completed.usage.output_tokens > 0
    assert runner.engine.manager.spend_by_provider["fallback"].output_tokens == (
        completed.usage.output_tokens
    )


async def test_a_provider_failing_mid_stream_ends_it_with_response_failed(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    _, url = served
    fakes.primary.core.update({"script": ["stream_error"], "stream_break_after": 2})
    stream = await openai_client(url).responses.create(model="auto", input="Say hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert "failed mid-answer" in events[-1].response.error.message
    assert "response.completed" not in [e.type for e in events]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
    ],
)
async def test_requests_that_need_stored_state_are_refused_clearly(
    served: tuple[Runner, str], fakes: Fakes, extra: dict[str, object], param: str
) -> None:
    _, url = served
    body = {"model": "auto", "input": "Hello", **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        await openai_client(url).responses.create(**body)  # type: ignore[arg-type]
    assert refused.value.param == param
    assert "send the whole conversation" in refused.value.message
    assert fakes.primary.stats.requests == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input": "x", "tools": [{"type": "web_search"}]}, "function tools only"),
        ({"input": "x", "temperature": 3}, "temperature"),
        ({"input": "x", "temperature": float("nan")}, "temperature"),
        ({"input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input_file",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c9", "output": "4"}]},
            "no call with call_id 'c9'",
        ),
        ({"input": [{"type": "web_search_call", "id": "ws"}]}, "web_search_call"),
        (
            {
                "input": "x",
                "tool_choice": {"type": "function", "name": "nope"},
                "tools": [{"type": "function", "name": "add", "parameters": {}}],
            },
            "'nope'",
        ),
        ({}, "input"),
    ],
)
async def test_invalid_requests_are_400_before_any_provider_is_called(
    served: tuple[Runner, str], fakes: Fakes, body: dict[str, object], needle: str
) -> None:
    _, url = served
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/responses", content=_json({"model": "auto", **body}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and needle in error["message"]
    assert fakes.primary.stats.requests == 0 and fakes.fallback.stats.requests == 0


async def test_an_exhausted_budget_is_refused_without_retries(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    runner.engine.manager.budget.charge(100)
    with pytest.raises(openai.RateLimitError) as caught:
        await openai_client(url).responses.create(model="auto", input="Hello")
    assert caught.value.code == "budget_exhausted"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fakes.primary.stats.requests == 0


def _json(document: object) -> bytes:
    import json

    return json.dumps(document).encode()  # NaN included, as a client might send it


PATCH = {"type": "custom", "name": "apply_patch", "description": "Apply a patch to files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_codex_style_custom_tool_loop_runs_through_the_fallback(
    served: tuple[Runner, str], fakes: Fakes, stream: bool
) -> None:
    runner, url = served
    fakes.primary.core.update({"outage": True})
    gpt = openai_client(url)
    prompt = {"role": "user", "content": "Use apply_patch to fix Greeting"}

    async def turn(items: list) -> Any:
        if not stream:
            return await gpt.responses.create(model="auto", input=items, tools=[PATCH])
        events = await gpt.responses.create(model="auto", input=items, tools=[PATCH], stream=True)
        return [event async for event in events][-1].response

    first = await turn([prompt])
    call = first.output[0]
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", "Greeting")
    second = await turn([
        prompt,
        {"type": "custom_tool_call", "call_id": call.call_id, "name": "apply_patch",
         "input": call.input},
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Patched"},
    ])  # fmt: skip
    assert second.output_text == "[fake-openai:gpt-4.1] tool results: Patched"
    assert runner.engine.manager.spend_by_provider["fallback"].calls == 2
