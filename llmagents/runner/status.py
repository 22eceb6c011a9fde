"""Reporting the runner's half of its LLMAgent's status, without ever slowing the work down.

``StatusReporter`` is told that something changed (``changed()``, a plain method call that
never waits) and writes the whole current status from a background task: at most once per
``min_interval``, and at once (but still one write at a time) when the change is urgent, a
new runner phase or a breaker that moved. A write that fails leaves the status pending and
is retried with backoff; because every write carries the complete latest status, the first
write after the API server comes back catches everything up.

Where the status goes is a ``StatusSink``: the LLMAgent's status subresource by server-side
apply under the field manager ``llmagents-runner`` (``AgentStatusSink``), or memory for runs
without Kubernetes and tests (``MemoryStatusSink``). ``build_status`` turns the engine and
the runner's progress into the pydantic model the CRD schema is generated from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from llmagents.api.status import (
    API_VERSION,
    RUNNER_FIELD_MANAGER,
    AgentCompletion,
    BreakerState,
    Condition,
    CostStatus,
    ProviderFailure,
    ProviderStatus,
    RunnerAgentStatus,
    RunnerPhase,
    TaskProgress,
    TokenStatus,
    status_apply_body,
)
from llmagents.kube import KubeClient, KubeError, custom_path
from llmagents.pricing import KnownPrice
from llmagents.retrying import Backoff
from llmagents.routing import ProviderManager
from llmagents.routing import clock as clocks

logger = logging.getLogger(__name__)

_RETRY = Backoff(first=1.0, cap=15.0)


@dataclass(slots=True)
class RunnerReport:
    """One write of the runner's status half, with the conditions the runner owns.

    The conditions travel beside the model: the CRD's ``conditions`` list is merged by
    ``type`` under server-side apply, so the runner's entries (``CheckpointTooLarge``) and
    the operator's coexist, each owned by its writer. An entry the runner leaves out of its
    next write is removed, which is how a resolved condition disappears.
    """

    status: RunnerAgentStatus
    conditions: list[Condition] = field(default_factory=list)


class StatusSink(Protocol):
    """Where status goes; ``write`` raises on failure (the reporter retries)."""

    async def write(self, report: RunnerReport) -> None: ...


class MemoryStatusSink:
    """Keeps every report written; for runs without Kubernetes and for tests."""

    def __init__(self) -> None:
        self.written: list[RunnerReport] = []

    async def write(self, report: RunnerReport) -> None:
        self.written.append(report)

    @property
    def latest(self) -> RunnerReport | None:
        return self.written[-1] if self.written else None


class AgentStatusSink:
    """Server-side apply to ``LLMAgent/<name>/status`` as the runner's field manager."""

    def __init__(self, kube: KubeClient, *, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self._path = custom_path(API_VERSION, namespace, "llmagents", name) + "/status"

    async def write(self, report: RunnerReport) -> None:
        body = status_apply_body(
            kind="LLMAgent", name=self.name, namespace=self.namespace, status=report.status
        )
        if report.conditions:
            body["status"]["conditions"] = [c.to_wire() for c in report.conditions]
        await self.kube.apply(self._path, body, field_manager=RUNNER_FIELD_MANAGER)


class StatusReporter:
    """Coalesces status changes into few writes; see the module docstring."""

    def __init__(
        self,
        sink: StatusSink,
        build: Callable[[], RunnerReport],
        *,
        min_interval: float = 5.0,
        clock: clocks.Clock = clocks.monotonic,
        on_failure: Callable[[], None] | None = None,
        retry: Backoff = _RETRY,
        agent: str = "-",
    ) -> None:
        self.sink = sink
        self._retry = retry
        self._build = build
        self.min_interval = min_interval
        self._clock = clock
        self._on_failure = on_failure
        self.agent = agent
        self._pending = 0  # generation of the latest change
        self._written = 0  # generation the latest successful write included
        self._urgent = False
        self._last_write = -1e18
        self._retry_at = -1e18
        self._failures = 0
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._closed = False
        self._last_sent: object = None
        self.muted = False
        """Set when this runner must not write any more (a newer runner took over)."""

    def changed(self, *, urgent: bool = False) -> None:
        """Something in the status changed; ``urgent`` writes it without the coalescing wait."""
        self._pending += 1
        self._urgent = self._urgent or urgent
        self._wake.set()

    @property
    def up_to_date(self) -> bool:
        return self._written >= self._pending

    async def run(self) -> None:
        """Write pending changes until ``close()``."""
        while not self._closed:
            delay = self._due_in()
            if delay is None or delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self._write()

    def _due_in(self) -> float | None:
        if self.up_to_date or self.muted:
            return None
        now = self._clock()
        due = self._last_write if self._urgent else self._last_write + self.min_interval
        return max(due, self._retry_at) - now

    async def _write(self) -> None:
        generation = self._pending
        urgent = self._urgent
        self._urgent = False
        try:
            report = self._build()
            fingerprint = (report.status.to_wire(), [c.to_wire() for c in report.conditions])
            if fingerprint != self._last_sent:
                await self.sink.write(report)
                self._last_sent = fingerprint
        except (KubeError, OSError) as error:
            self._urgent = self._urgent or urgent
            delay = self._retry.delay(self._failures)
            self._failures += 1
            self._retry_at = self._clock() + delay
            if self._on_failure is not None:
                self._on_failure()
            noisy = self._failures in (1, 5) or self._failures % 50 == 0
            log = logger.warning if noisy else logger.debug
            log(
                "agent %s: status write failed (%d in a row), keeping it pending: %s",
                self.agent,
                self._failures,
                error,
            )
        else:
            if self._failures:
                logger.info(
                    "agent %s: status written again after %d failed attempts",
                    self.agent,
                    self._failures,
                )
            self._failures = 0
            self._retry_at = -1e18
            self._written = max(self._written, generation)
            self._last_write = self._clock()
        finally:
            self._done.set()

    async def flush(self, timeout: float) -> bool:
        """Write the latest status now and wait for it (bounded); True when it landed."""
        if self.muted:
            return False
        self.changed(urgent=True)
        self._retry_at = -1e18
        wanted = self._pending
        try:
            async with asyncio.timeout(timeout):
                while self._written < wanted and not self._closed:
                    self._done.clear()
                    await self._done.wait()
        except TimeoutError:
            return False
        return self._written >= wanted

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._done.set()


def build_status(
    manager: ProviderManager,
    *,
    phase: RunnerPhase,
    message: str | None,
    started_at: datetime,
    tasks: TaskProgress | None,
    last_checkpoint: datetime | None,
    redact: Callable[[str], str] = lambda text: text,
    known_prices: Mapping[str, KnownPrice] | None = None,
    completion: AgentCompletion | None = None,
) -> RunnerAgentStatus:
    """The runner's status from the engine's state and the runner's own progress."""
    providers = []
    known_prices = known_prices or {}
    spend_by_provider = manager.spend_by_provider
    for name, status in manager.status().items():
        known = known_prices.get(name)
        spent = spend_by_provider.get(name)
        providers.append(
            ProviderStatus(
                name=name,
                healthy=status.healthy,
                breaker_state=BreakerState(status.breaker.value),
                open_since=status.open_since,
                open_until=status.open_until,
                breaker_reason=redact(status.breaker_reason)[:1024]
                if status.breaker_reason
                else None,
                calls=status.calls,
                success_rate=_rate(status.success_rate),
                error_rate=_rate(status.error_rate),
                latency_mean_ms=_ms(status.mean_latency),
                latency_p95_ms=_ms(status.p95_latency),
                cost_usd=round(spent.cost, 9) if spent is not None else 0.0,
                misconfigured=(
                    redact(status.misconfigured)[:1024] if status.misconfigured else None
                ),
                last_success=status.last_success,
                last_failure=ProviderFailure(
                    at=status.last_failure, reason=redact(status.last_error or "failed")[:1024]
                )
                if status.last_failure is not None
                else None,
                price=known.to_status() if known is not None else None,
            )
        )
    spend = manager.spend
    budget = manager.budget
    exhausted = None
    if budget is not None:
        exhausted = budget.exhausted()
    spent_usd = budget.spent if budget is not None else spend.cost
    cost = CostStatus(
        spent_usd=spent_usd,
        total_usd=spend.cost,
        limit_usd=budget.limit if budget is not None else None,
        period=budget.period if budget is not None else None,
        period_start=budget.period_start if budget is not None else None,
    )
    return RunnerAgentStatus(
        runner_phase=phase,
        message=redact(message)[:4096] if message else None,
        started_at=started_at,
        current_provider=manager.current_provider,
        providers=providers,
        cost=cost,
        tokens=TokenStatus(
            input=spend.input_tokens,
            output=spend.output_tokens,
            cached_input=spend.cached_input_tokens,
            reasoning=spend.reasoning_tokens,
        ),
        tasks=tasks,
        last_checkpoint=last_checkpoint,
        budget_exhausted=exhausted,
        completion=completion,
    )


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def _rate(share: float | None) -> float | None:
    # Four digits: a status that changes in the tenth decimal on every call writes for nothing.
    return round(share, 4) if share is not None else None
