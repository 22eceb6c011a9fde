"""Every adapter against the fake server of its protocol: answers, streams, every error class."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from llmagents.chat import StreamChunk
from llmagents.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    ModelNotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    ServerError,
)
from llmagents.testing.fake_providers import FaultPlan

from .conftest import API_KEY, REQUEST, Pair


async def collect(pair: Pair, **plan: object) -> list[StreamChunk]:
    if plan:
        pair.fake.faults = FaultPlan.model_validate(plan)
    return [chunk async for chunk in pair.adapter.stream(REQUEST, timeout=2.0)]


async def stream_until_error(pair: Pair) -> tuple[list[str], ProviderError]:
    texts: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in pair.adapter.stream(REQUEST, timeout=2.0):
            texts.append(chunk.text)
    return texts, caught.value


async def test_complete_returns_text_usage_and_finish_reason(pair: Pair) -> None:
    answer = await pair.adapter.complete(REQUEST, timeout=2.0)

    assert answer.text.startswith(f"[fake-{pair.protocol}:{pair.adapter.model}] answer to: What")
    assert answer.finish_reason == "stop"
    assert answer.provider == "primary"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    assert pair.fake.stats.input_tokens == answer.usage.input_tokens
    assert pair.fake.stats.output_tokens == answer.usage.output_tokens


async def test_stream_yields_the_same_text_and_ends_with_usage(pair: Pair) -> None:
    whole = await pair.adapter.complete(REQUEST, timeout=2.0)

    chunks = await collect(pair)

    assert len(chunks) > 3
    assert "".join(c.text for c in chunks) == whole.text
    final = chunks[-1]
    assert final.text == "" and final.finish_reason == "stop"
    assert final.usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])
    assert pair.fake.stats.streams == 1


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(pair: Pair) -> None:
    short = replace(REQUEST, max_tokens=6)

    answer = await pair.adapter.complete(short, timeout=2.0)
    chunks = [c async for c in pair.adapter.stream(short, timeout=2.0)]

    assert answer.finish_reason == "length" and 0 < answer.usage.output_tokens <= 6
    assert chunks[-1].finish_reason == "length"


async def test_list_models_names_the_models_the_fake_serves(pair: Pair) -> None:
    assert await pair.adapter.list_models() == list(pair.fake.models)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("500", ServerError),
        ("503", ServerError),
        ("400", RequestRefused),
        ("413", RequestRefused),
        ("422", RequestRefused),
        ("402", BadRequest),
        ("reset", ConnectionFailed),
        ("malformed", MalformedResponse),
        ("truncated", MalformedResponse),
        ("wrong_shape", MalformedResponse),
        ("break", ConnectionFailed),
    ],
)
async def test_each_fault_maps_to_its_error_class(
    pair: Pair, fault: str, error: type[ProviderError]
) -> None:
    pair.fake.faults = FaultPlan(script=[fault])

    with pytest.raises(error) as caught:
        await pair.adapter.complete(REQUEST, timeout=2.0)

    assert caught.value.provider == "primary"
    assert pair.fake.stats.outcomes[fault] == 1


@pytest.mark.parametrize("fault", ["429", "500", "503", "reset", "400"])
async def test_a_stream_refused_before_its_first_byte_raises_before_any_chunk(
    pair: Pair, fault: str
) -> None:
    pair.fake.faults = FaultPlan(script=[fault])

    texts, error = await stream_until_error(pair)

    assert texts == []
    assert error.status_code == (int(fault) if fault.isdigit() else None)


async def test_rate_limit_carries_retry_after_seconds(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["429:2"])

    with pytest.raises(RateLimited) as caught:
        await pair.adapter.complete(REQUEST, timeout=2.0)

    assert caught.value.status_code == 429
    assert caught.value.retry_after == pytest.approx(2.0)


async def test_rate_limit_reads_retry_after_as_an_http_date(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["429:3:date"])

    with pytest.raises(RateLimited) as caught:
        await pair.adapter.complete(REQUEST, timeout=2.0)

    # An HTTP date has whole seconds, so the wait comes back between 2 and 3 seconds.
    assert caught.value.retry_after is not None
    assert 1.5 <= caught.value.retry_after <= 3.0


# Gemini signals overload with 503 UNAVAILABLE, never 529: the case does not exist there.
@pytest.mark.parametrize("pair", ["anthropic", "openai"], indirect=True)
async def test_status_529_is_overloaded_not_rate_limited(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["529"])

    with pytest.raises(Overloaded) as caught:
        await pair.adapter.complete(REQUEST, timeout=2.0)

    assert caught.value.status_code == 529 and caught.value.retryable


async def test_a_hanging_provider_times_out_at_the_attempt_timeout(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["hang", "hang"], hang_seconds=5)
    started = time.monotonic()

    with pytest.raises(ProviderTimeout):
        await pair.adapter.complete(REQUEST, timeout=0.2)
    with pytest.raises(ProviderTimeout):
        await anext(pair.adapter.stream(REQUEST, timeout=0.2))

    assert time.monotonic() - started < 2.0


async def test_a_trickling_stream_cannot_outlast_the_attempt_timeout(pair: Pair) -> None:
    # Each chunk arrives well within httpx's read timeout; only the attempt deadline stops it.
    pair.fake.faults = FaultPlan(chunk_delay_ms=80)
    texts: list[str] = []

    with pytest.raises(ProviderTimeout):
        async for chunk in pair.adapter.stream(REQUEST, timeout=0.3):
            texts.append(chunk.text)

    assert 1 <= len(texts) <= 5


async def test_a_stream_broken_mid_answer_raises_after_the_chunks_it_delivered(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["break"], stream_break_after=3)

    texts, error = await stream_until_error(pair)

    assert len(texts) == 3 and all(texts)
    assert isinstance(error, ConnectionFailed)


@pytest.mark.parametrize("fault", ["truncated", "malformed"])
async def test_a_stream_cut_or_garbled_mid_answer_is_malformed(pair: Pair, fault: str) -> None:
    pair.fake.faults = FaultPlan(script=[fault], stream_break_after=2)

    texts, error = await stream_until_error(pair)

    assert len(texts) == 2
    assert isinstance(error, MalformedResponse)


async def test_an_error_event_mid_stream_raises_the_providers_error(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["stream_error"], stream_break_after=2)

    texts, error = await stream_until_error(pair)

    assert len(texts) == 2
    expected = Overloaded if pair.protocol == "anthropic" else ServerError
    assert type(error) is expected and error.retryable


async def test_a_wrong_key_is_an_auth_failure_that_never_shows_the_key(pair: Pair) -> None:
    async with pair.adapter_with(api_key="sk-wrong-key-987654321") as adapter:
        with pytest.raises(AuthFailed) as caught:
            await adapter.complete(REQUEST, timeout=2.0)

    assert caught.value.misconfiguration
    assert "987654321" not in str(caught.value) and API_KEY not in str(caught.value)
    assert pair.fake.stats.outcomes == {f"rejected_{caught.value.status_code}": 1}


async def test_a_missing_key_is_an_auth_failure(pair: Pair) -> None:
    async with pair.adapter_with(api_key=None) as adapter:
        with pytest.raises(AuthFailed) as caught:
            await adapter.complete(REQUEST, timeout=2.0)

    assert caught.value.status_code in (401, 403)


async def test_an_unknown_model_is_model_not_found(pair: Pair) -> None:
    async with pair.adapter_with(model="no-such-model") as adapter:
        with pytest.raises(ModelNotFound) as caught:
            await adapter.complete(REQUEST, timeout=2.0)
        with pytest.raises(ModelNotFound):
            await anext(adapter.stream(REQUEST, timeout=2.0))

    assert caught.value.status_code == 404 and "no-such-model" in str(caught.value)


async def test_a_request_the_api_refuses_is_a_refused_request(pair: Pair) -> None:
    with pytest.raises(RequestRefused) as caught:
        await pair.adapter.complete(replace(REQUEST, max_tokens=0), timeout=2.0)

    assert caught.value.status_code == 400 and not caught.value.retryable


async def test_a_closed_port_is_a_connection_failure(pair: Pair) -> None:
    url = pair.fake.base_url
    await pair.fake.stop()

    async with pair.adapter_with(base_url=url) as adapter:
        with pytest.raises(ConnectionFailed):
            await adapter.complete(REQUEST, timeout=2.0)


async def test_the_fake_counts_requests_outcomes_and_tokens(pair: Pair) -> None:
    pair.fake.faults = FaultPlan(script=["429", "ok", "reset"])
    outcomes = []
    for _ in range(4):
        try:
            answer = await pair.adapter.complete(REQUEST, timeout=2.0)
            outcomes.append(answer.usage)
        except ProviderError as error:
            outcomes.append(error.kind.value)

    stats = pair.fake.stats
    assert outcomes[0] == "rate_limited" and outcomes[2] == "connection_failed"
    assert stats.requests == 4
    assert stats.outcomes == {"429": 1, "ok": 2, "reset": 1}
    assert stats.output_tokens == outcomes[1].output_tokens + outcomes[3].output_tokens


async def test_concurrent_calls_share_one_pooled_client(pair: Pair) -> None:
    answers = await asyncio.gather(
        *(pair.adapter.complete(REQUEST, timeout=2.0) for _ in range(20))
    )

    assert len({a.text for a in answers}) == 1
    assert pair.fake.stats.requests == 20
