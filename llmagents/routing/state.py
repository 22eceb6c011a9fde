"""Everything the engine keeps about one provider of the pool, and how an outcome changes it.

A provider's breaker, health and misconfiguration mark change together: a failure is a health
sample plus either breaker evidence or, for errors no retry can fix, a misconfiguration mark
that sends the provider to the back of every order until it answers again. A request the
provider refused for its content is neither: it says nothing about the provider.
"""

from __future__ import annotations

import logging

from llmagents.api.pool import ProviderSpec, Tier
from llmagents.errors import ErrorKind, ProviderError
from llmagents.routing.breaker import Admission, CircuitBreaker
from llmagents.routing.calls import CallTask
from llmagents.routing.costs import Price, token_cost
from llmagents.routing.health import Health
from llmagents.routing.selection import capabilities

logger = logging.getLogger(__name__)


class ProviderState:
    """A pool member's spec, breaker, health and misconfiguration mark."""

    __slots__ = (
        "agent",
        "breaker",
        "capabilities",
        "free",
        "health",
        "index",
        "last_error",
        "misconfigured",
        "name",
        "price",
        "priority",
        "spec",
        "tier",
        "timeout",
    )

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        index: int,
        breaker: CircuitBreaker,
        health: Health,
        price: Price | None,
        agent: str = "-",
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.agent = agent
        self.priority = spec.priority
        self.tier: Tier = spec.tier
        self.price = price
        """Its resolved prices; None when unknown (no pricing and not in the price table)."""
        self.free = price is not None and price.free
        self.capabilities = capabilities(spec)
        self.timeout = spec.timeout.total_seconds()
        self.breaker = breaker
        self.health = health
        self.misconfigured: str | None = None
        """Why the provider's configuration looks wrong (auth, bad request, unknown model)."""
        self.last_error: str | None = None
        """The kind and message of its latest failure."""

    def estimate(self, task: CallTask) -> float:
        """Expected cost of ``task`` here, in US dollars."""
        if self.free or self.price is None:
            return 0.0
        return token_cost(task.input_tokens, task.output_tokens, self.price)

    def succeeded(self, now: float, admission: Admission, latency: float) -> None:
        self.health.record(now, ok=True, latency=latency)
        self.breaker.record_success(now, admission)

    def answered(self) -> None:
        """The provider answered: whatever looked misconfigured works now."""
        if self.misconfigured is not None:
            logger.info(
                "agent %s: provider %s answered again; no longer marked misconfigured",
                self.agent,
                self.name,
            )
            self.misconfigured = None

    def failed(
        self, now: float, admission: Admission, error: ProviderError, latency: float
    ) -> None:
        if error.kind in (ErrorKind.CLIENT_BUSY, ErrorKind.REQUEST_REFUSED):
            # The runner's own connection limit, or a request the provider refused for its
            # content (the client's doing): no evidence about the provider either way.
            self.breaker.release(admission)
            return
        self.health.record(now, ok=False, latency=latency)
        self.last_error = error.summary
        if error.misconfiguration:
            # Not a health problem of the provider: no retry or breaker opening can fix it.
            self.breaker.release(admission)
            self._mark(error)
        else:
            self.breaker.record_failure(now, admission, error.kind.value)

    def probed(self, now: float, *, ok: bool, latency: float, error: ProviderError | None) -> None:
        """Take an active probe's outcome."""
        self.health.record_probe(now, ok=ok, latency=latency)
        if not ok:
            self.last_error = error.summary if error else "probe failed"
        if ok:
            self.answered()
            self.breaker.on_probe(now, ok=True)
        elif error is not None and (
            error.misconfiguration or error.kind is ErrorKind.REQUEST_REFUSED
        ):
            # A probe's request is the runner's own: refused, the configuration is at fault.
            self._mark(error)
        else:
            self.breaker.on_probe(now, ok=False, kind=error.kind.value if error else "failed")

    def probe_due(self, now: float, interval: float) -> bool:
        last = self.health.last_activity
        return last is None or now - last >= interval

    def _mark(self, error: ProviderError) -> None:
        self.misconfigured = error.summary
        logger.warning(
            "agent %s: provider %s looks misconfigured: %s",
            self.agent,
            self.name,
            self.misconfigured,
        )
