"""The scene the chaos tests share: a flapping primary provider and a steady fallback.

The local tests (``tests/unit/test_chaos_local.py``, ``test_chaos_gateway.py``) and the
cluster one (``tests/cluster/test_chaos.py``) kill a runner at random instants while its
pool's primary fails three calls in ten (503, 429 or a reset) and a fallback answers; the
audit (``tooling.audit``) then compares the runner's books with the fakes' counters. This
module holds that pool and those fakes once, so the tests differ only in what they kill.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from llmagents.testing.fake_providers import FakeOpenAI, FaultPlan, ThreadedFake

ROUNDS = range(int(os.environ.get("LLMAGENTS_CHAOS_ROUNDS") or 1))
"""``LLMAGENTS_CHAOS_ROUNDS=20`` repeats a chaos test (each round with its own seed)."""


@contextmanager
def flapping_fakes(
    api_key: str, *, latency: str = "20:80"
) -> Iterator[tuple[ThreadedFake, ThreadedFake]]:
    """(primary, fallback) fake OpenAI servers: the primary fails 30% of calls."""
    flapping = FaultPlan(fail_rate=0.3, fail_with=["503", "reset", "429"], latency=latency)
    primary = FakeOpenAI(api_key=api_key, faults=flapping).start_in_thread()
    fallback = FakeOpenAI(api_key=api_key, faults=FaultPlan(latency=latency)).start_in_thread()
    try:
        yield primary, fallback
    finally:
        primary.stop()
        fallback.stop()


def pool_spec(
    primary: str, fallback: str, *, prices: Mapping[str, float], secret_key: str
) -> dict[str, Any]:
    """A ProviderPool spec over the two fakes (base URLs), priced at ``prices``, with the
    API key in the Secret ``keys`` under ``secret_key``; retries and breaker kept short."""
    provider = {"type": "openai", "secretRef": {"name": "keys", "key": secret_key},
                "pricing": dict(prices), "timeout": "5s", "maxRetries": 1}  # fmt: skip
    return {"providers": [
                {**provider, "name": "primary", "model": "gpt-4o-mini", "baseURL": primary,
                 "priority": 1},
                {**provider, "name": "fallback", "model": "gpt-4.1", "baseURL": fallback,
                 "priority": 2}],
            "retry": {"initialDelay": "10ms", "jitter": 0},
            "circuitBreaker": {"maxFailures": 3, "recoveryTime": "1s"}}  # fmt: skip


def pool_documents(
    primary: str, fallback: str, *, prices: Mapping[str, float], api_key: str
) -> list[dict[str, Any]]:
    """The Secret ``keys`` and the ProviderPool ``pool`` of ``pool_spec``, as documents of a
    manifest for ``llmagents run -f``."""
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
         "stringData": {"openai": api_key}},
        {"apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
         "metadata": {"name": "pool"},
         "spec": pool_spec(primary, fallback, prices=prices, secret_key="openai")},
    ]  # fmt: skip
