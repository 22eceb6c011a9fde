"""``POST /v1/messages``, spoken to by Anthropic's own SDK, with real fake providers behind."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx
import pytest

from llmagents.runner.lifecycle import Runner

from .conftest import Fakes


def client(base_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key="llmagents-gateway", max_retries=0)


MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow"}]


async def test_a_message_falls_back_and_is_charged(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"outage": True})
    raw = await client(url).messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=200, system="Be brief.", messages=MESSAGES
    )
    message = await raw.parse()
    assert raw.headers["x-llmagents-provider"] == "fallback"
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("[fake-openai:gpt-4.1] answer to: Name three")
    spend = runner.engine.manager.spend_by_provider["fallback"]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        spend.input_tokens,
        spend.output_tokens,
    )
    assert float(raw.headers["x-llmagents-cost-usd"]) == pytest.approx(spend.cost)


async def test_a_streamed_message_falls_back_and_sends_anthropics_events(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"script": ["503"]})
    async with client(url).messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, messages=MESSAGES
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.content[0].text.startswith("[fake-openai:gpt-4.1] answer to: Name three")
    spend = runner.engine.manager.spend_by_provider["fallback"]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        spend.input_tokens,
        spend.output_tokens,
    )
    assert final.stop_reason == "end_turn"


async def test_a_provider_failing_mid_stream_is_an_error_the_sdk_raises(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    _, url = served
    fakes.primary.core.update({"script": ["stream_error"], "stream_break_after": 2})
    with pytest.raises(anthropic.APIStatusError, match="failed mid-answer"):
        async with client(url).messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=MESSAGES
        ) as stream:
            async for _ in stream:
                pass


async def test_an_exhausted_budget_is_a_429_the_sdk_does_not_retry(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    runner.engine.manager.budget.charge(100)
    patient = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await patient.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert "budget" in caught.value.body["error"]["message"]
    assert runner.metrics.gateway.labels("agent-a", "plain", "429")._value.get() == 1
    assert fakes.primary.stats.requests == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": MESSAGES}, "max_tokens"),
        ({"max_tokens": 10, "messages": MESSAGES, "temperature": 1.5}, "temperature"),
        (
            {
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "4"}
                        ],
                    }
                ],
            },
            "'toolu_9'",
        ),
        (
            {
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}],
            },
            "document",
        ),
        (
            {"max_tokens": 10, "messages": MESSAGES, "tool_choice": {"type": "tool", "name": "f"}},
            "'f'",
        ),
        (  # a call demanded with nothing to call: answered in text, the demand lost
            {"max_tokens": 10, "messages": MESSAGES, "tool_choice": {"type": "any"}},
            "tool_choice",
        ),
    ],
)
async def test_invalid_requests_are_400_in_anthropics_error_shape(
    served: tuple[Runner, str], fakes: Fakes, body: dict[str, object], needle: str
) -> None:
    _, url = served
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/v1/messages", json={"model": "m", **body})
    assert response.status_code == 400, response.text
    document = response.json()
    assert document["type"] == "error"
    assert document["error"]["type"] == "invalid_request_error"
    assert needle in document["error"]["message"]
    assert fakes.primary.stats.requests == 0


async def test_the_sdks_auth_token_is_taken_like_an_api_key(served: tuple[Runner, str]) -> None:
    """Anthropic's SDK sends ``auth_token`` (``ANTHROPIC_AUTH_TOKEN``) as ``Authorization:
    Bearer``; the gateway, like Anthropic, answers either way (it holds the real keys)."""
    _, url = served
    async with anthropic.AsyncAnthropic(base_url=url, auth_token="llmagents-gateway",
                                        api_key=None, max_retries=0) as bearer:  # fmt: skip
        raw = await bearer.messages.with_raw_response.create(
            model="auto", max_tokens=200, messages=MESSAGES
        )
    assert raw.http_request.headers["authorization"] == "Bearer llmagents-gateway"
    assert "x-api-key" not in raw.http_request.headers
    message = await raw.parse()
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"


async def test_count_tokens_estimates_the_input(served: tuple[Runner, str]) -> None:
    _, url = served
    counted = await client(url).messages.count_tokens(
        model="m", system="Be brief.", messages=MESSAGES
    )
    assert counted.input_tokens > len("Name three colours of the rainbow") // 5


async def _raw_exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        async with asyncio.timeout(10):
            return await reader.read()  # the server closes after a refusal
    finally:
        writer.close()


async def test_the_servers_own_refusals_on_messages_routes_are_in_anthropics_shape(
    served: tuple[Runner, str],
) -> None:
    """What the server refuses before a route reads the request (a body over the limit, a
    malformed chunk) and routes or methods it does not serve: Anthropic's SDK and raw clients
    of ``/v1/messages`` read ``{"type": "error", "error": {"type", "message"}}``."""
    _, url = served
    huge = [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]
    with pytest.raises(anthropic.APIStatusError) as too_large:
        await client(url).messages.create(model="auto", max_tokens=10, messages=huge)
    assert too_large.value.status_code == 413
    assert isinstance(too_large.value.body, dict)
    assert too_large.value.body.pop("request_id").startswith("req_")
    assert too_large.value.body == {
        "type": "error",
        "error": {"type": "request_too_large",
                  "message": "the request body is limited to 8388608 bytes"},
    }  # fmt: skip
    raw = await _raw_exchange(url, b"POST /v1/messages HTTP/1.1\r\ntransfer-encoding: chunked\r\n"
                                   b"\r\n3\r\nabc\r\nzz\r\n")  # fmt: skip
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    error = json.loads(body)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    async with httpx.AsyncClient() as http:
        wrong_method = await http.get(f"{url}/v1/messages")
        missing = await http.post(f"{url}/v1/messages/batches", json={})
        chat = await http.get(f"{url}/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert wrong_method.json()["type"] == "error"
    assert missing.status_code == 404
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "not_found_error"
    assert chat.status_code == 405 and chat.json()["error"]["code"] == "method_not_allowed"
