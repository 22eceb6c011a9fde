from __future__ import annotations

import random

import pytest

from llmagents.api.pool import RetrySpec
from llmagents.errors import ErrorKind
from llmagents.routing.backoff import RetryPolicy


def policy(**fields: object) -> RetryPolicy:
    return RetryPolicy(RetrySpec.model_validate(fields))


def test_exponential_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    retry = policy(
        backoff="exponential", initialDelay="500ms", multiplier=2, maxDelay="5s", jitter=0
    )
    assert [retry.base_delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_linear_backoff_grows_by_the_initial_delay_up_to_the_cap() -> None:
    retry = policy(backoff="linear", initialDelay="1s", maxDelay="3500ms", jitter=0)
    assert [retry.base_delay(n) for n in range(5)] == [1.0, 2.0, 3.0, 3.5, 3.5]


def test_without_jitter_the_delay_is_the_schedule_exactly() -> None:
    retry = policy(initialDelay="1s", multiplier=3, jitter=0)
    assert retry.delay(2, random.Random(1)) == 9.0


def test_jitter_removes_at_most_its_share_and_never_exceeds_the_cap() -> None:
    retry = policy(initialDelay="1s", multiplier=2, maxDelay="4s", jitter=0.25)
    rng = random.Random(42)
    delays = [retry.delay(5, rng) for _ in range(500)]
    assert all(3.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 400  # really random, not a constant offset


def test_jitter_is_reproducible_from_the_injected_rng() -> None:
    retry = policy(jitter=0.5)
    first = [retry.delay(n, random.Random(3)) for n in range(4)]
    again = [retry.delay(n, random.Random(3)) for n in range(4)]
    assert first == again


def test_retry_after_is_a_floor_on_the_wait() -> None:
    retry = policy(initialDelay="1s", jitter=0)
    assert retry.delay(0, random.Random(0), retry_after=7.5) == 7.5
    assert retry.delay(0, random.Random(0), retry_after=0.2) == 1.0


def test_retry_after_is_ignored_when_the_pool_says_so() -> None:
    retry = policy(initialDelay="1s", jitter=0, respectRetryAfter=False)
    assert retry.delay(0, random.Random(0), retry_after=30) == 1.0


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ErrorKind.RATE_LIMITED, 6),
        (ErrorKind.TIMEOUT, 0),
        (ErrorKind.SERVER_ERROR, 3),  # not overridden: the provider's maxRetries
    ],
)
def test_per_error_kind_retries_override_the_provider_default(
    kind: ErrorKind, expected: int
) -> None:
    retry = policy(perErrorKind={"rateLimited": 6, "timeout": 0})
    assert retry.retries_for(kind, 3) == expected
