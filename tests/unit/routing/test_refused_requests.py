"""A request a provider refuses for its content is the client's fault, not the provider's:
the engine tries the next provider at once and marks, opens and counts nothing against the
one that refused; when every provider refuses, the call ends in ``AllProvidersRefused``."""

from __future__ import annotations

import pytest

from llmagents.errors import (
    AllProvidersFailed,
    AllProvidersRefused,
    AuthFailed,
    RequestRefused,
    ServerError,
)
from llmagents.routing import BreakerState, CallTask

from .helpers import FakeClock, Scripted, manager, pool, provider

TOO_LONG = "invalid_request_error: prompt is too long: 210000 tokens > 200000 maximum"


def two(**fields: object):
    return pool(
        provider("a", priority=1, maxRetries=2),
        provider("b", priority=2, maxRetries=2),
        circuitBreaker={"maxFailures": 2, "recoveryTime": "30s"},
        retry={"jitter": 0, "initialDelay": "1s"},
        **fields,
    )


async def test_a_refused_request_moves_on_at_once_and_blames_nobody(clock: FakeClock) -> None:
    engine = manager(two(), clock)
    for _ in range(5):  # far past the breaker's threshold of 2
        call = Scripted(clock, {"a": [RequestRefused(TOO_LONG, status_code=400)]})
        result = await engine.execute(CallTask(), call)
        assert call.providers == ["a", "b"] and result.provider == "b"
        assert result.fallbacks[0].reason == "request_refused"
    assert clock.sleeps == []  # no retry at the provider that refused
    status = engine.status()["a"]
    assert status.breaker is BreakerState.CLOSED
    assert status.misconfigured is None
    assert status.success_rate is None  # no health sample: it said nothing about a
    assert status.healthy
    assert engine.plan(CallTask()) == ["a", "b"]  # still first in line


async def test_a_request_every_provider_refuses_ends_in_all_providers_refused(
    clock: FakeClock,
) -> None:
    engine = manager(two(), clock)
    call = Scripted(
        clock,
        {"a": [RequestRefused(TOO_LONG)], "b": [RequestRefused("unsupported keyword 'oneOf'")]},
    )
    with pytest.raises(AllProvidersRefused) as refused:
        await engine.execute(CallTask(), call)
    message = str(refused.value)
    assert "prompt is too long" in message and "unsupported keyword 'oneOf'" in message
    assert set(refused.value.last_errors) == {"a", "b"}
    assert all(s.misconfigured is None for s in engine.status().values())


@pytest.mark.parametrize(
    "other", [ServerError("down"), AuthFailed("bad key")], ids=["outage", "misconfigured"]
)
async def test_a_refusal_beside_a_provider_failing_for_its_own_reason_is_no_client_error(
    clock: FakeClock, other: Exception
) -> None:
    """The provider that failed might have taken the request: the client is not told it is
    wrong."""
    engine = manager(two(), clock)
    call = Scripted(clock, {"a": [RequestRefused(TOO_LONG)], "b": [other] * 3})
    with pytest.raises(AllProvidersFailed) as failed:
        await engine.execute(CallTask(), call)
    assert not isinstance(failed.value, AllProvidersRefused)
    assert "request_refused" in str(failed.value)


async def test_a_refusal_beside_an_open_breaker_is_no_client_error(clock: FakeClock) -> None:
    engine = manager(two(), clock)
    await engine.execute(CallTask(), Scripted(clock, {"b": []}))
    for _ in range(2):
        await engine.execute(CallTask(), Scripted(clock, {"a": [ServerError("x")] * 3}))
    assert engine.status()["a"].breaker is BreakerState.OPEN
    call = Scripted(clock, {"b": [RequestRefused(TOO_LONG)]})
    with pytest.raises(AllProvidersFailed) as failed:
        await engine.execute(CallTask(), call)
    assert not isinstance(failed.value, AllProvidersRefused)
    assert call.providers == ["b"]


async def test_a_probe_the_provider_refuses_marks_it_misconfigured(clock: FakeClock) -> None:
    """A probe's request is the runner's own: refused, the configuration is at fault."""
    engine = manager(two(), clock)
    engine.record_probe("a", ok=False, latency=0.1, error=RequestRefused("max_tokens: 1 < 16"))
    assert engine.status()["a"].misconfigured == "request_refused: max_tokens: 1 < 16"
