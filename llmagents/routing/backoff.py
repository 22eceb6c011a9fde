"""How long to wait before retrying a provider, and how many retries an error deserves.

The schedule is the pool's ``RetrySpec`` turned into numbers once: exponential
(``initialDelay × multiplier^n``) or linear (``initialDelay × (n + 1)``), capped at
``maxDelay``. Jitter removes a random share of each wait, up to ``jitter``, so that many
agents hitting the same outage do not retry in step, and never pushes a wait past the cap.
A provider's ``Retry-After`` is a floor on the wait: calling sooner would only be refused
again. Whether the wait still fits in the call's deadline is the manager's decision.
"""

from __future__ import annotations

import random

from llmagents.api.pool import BackoffKind, RetrySpec
from llmagents.errors import ErrorKind


class RetryPolicy:
    """A pool's retry settings, precomputed for the hot path."""

    __slots__ = (
        "_by_kind",
        "_cap",
        "_exponential",
        "_initial",
        "_jitter",
        "_multiplier",
        "respect_retry_after",
    )

    def __init__(self, spec: RetrySpec) -> None:
        self._exponential = spec.backoff is BackoffKind.EXPONENTIAL
        self._initial = spec.initial_delay.total_seconds()
        self._multiplier = spec.multiplier
        self._cap = spec.max_delay.total_seconds()
        self._jitter = spec.jitter
        self.respect_retry_after = spec.respect_retry_after
        by_kind = spec.per_error_kind
        self._by_kind: dict[ErrorKind, int] = {}
        if by_kind is not None:
            for kind in ErrorKind:
                count = getattr(by_kind, kind.value, None)
                if count is not None:
                    self._by_kind[kind] = count

    def retries_for(self, kind: ErrorKind, default: int) -> int:
        """Retries allowed at one provider after an error of ``kind``; ``default`` is its maxRetries."""
        return self._by_kind.get(kind, default)

    def base_delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first retry), without jitter."""
        if self._exponential:
            delay = self._initial * self._multiplier**retry
        else:
            delay = self._initial * (retry + 1)
        return min(delay, self._cap)

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """The wait before retry number ``retry``, jittered, and at least ``retry_after``."""
        delay = self.base_delay(retry)
        if self._jitter:
            delay *= 1.0 - self._jitter * rng.random()
        if retry_after is not None and self.respect_retry_after and retry_after > delay:
            return retry_after
        return delay
