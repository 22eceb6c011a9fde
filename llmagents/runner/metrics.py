"""The runner's Prometheus metrics, fed by the engine's events and the runner's own.

``RunnerMetrics`` is an ``EngineListener``: attempts, fallbacks, breaker transitions and
charged usage arrive synchronously from the engine and only touch counters. Gauges that
summarise state (budget left, checkpoint age) are computed when scraped. Every metric lives
in a dedicated ``CollectorRegistry``, so the runner exports exactly these and nothing a
library registered globally; ``METRIC_NAMES`` lists what is exported, for the dashboard and
alert tests. Labels never carry a secret: only agent, provider names and fixed words.

The counters fed on every call keep their labelled children in a dict: prometheus-client's
``labels()`` validates and locks on each lookup, which the gateway would pay several times a
call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmagents.chat import Usage
from llmagents.routing import AttemptRecord, EngineListener, Fallback, Transition
from llmagents.routing.breaker import BreakerState

BREAKER_STATE_VALUES: dict[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}
"""``llmagents_breaker_state``: 0 closed, 1 half-open, 2 open."""

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

METRIC_NAMES: frozenset[str] = frozenset(
    {
        "llmagents_requests_total",
        "llmagents_provider_failures_total",
        "llmagents_fallbacks_total",
        "llmagents_request_duration_seconds",
        "llmagents_tokens_total",
        "llmagents_cost_usd_total",
        "llmagents_budget_limit_usd",
        "llmagents_budget_remaining_usd",
        "llmagents_breaker_state",
        "llmagents_provider_healthy",
        "llmagents_checkpoint_age_seconds",
        "llmagents_checkpoint_last_success_timestamp_seconds",
        "llmagents_checkpoint_size_bytes",
        "llmagents_checkpoint_failures_total",
        "llmagents_tasks_total",
        "llmagents_gateway_requests_total",
        "llmagents_status_write_failures_total",
        "llmagents_spend_journal_failing",
    }
)
"""Every metric family the runner exports, as PromQL names it (histograms add
``_bucket``, ``_sum`` and ``_count``)."""


class RunnerMetrics(EngineListener):
    """The runner's metrics for one agent; pass it to the engine as its listener."""

    def __init__(self, agent: str, registry: CollectorRegistry | None = None) -> None:
        self.agent = agent
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmagents_requests", "Attempts at providers, by outcome (ok or the error kind).",
            ["agent", "provider", "outcome"], registry=r,
        )  # fmt: skip
        self.failures = Counter(
            "llmagents_provider_failures", "Failed attempts and broken streams, by error kind.",
            ["agent", "provider", "reason"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "llmagents_fallbacks", "Calls that moved from one provider to another, and why.",
            ["agent", "from_provider", "to_provider", "reason"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "llmagents_request_duration_seconds",
            "Time until a provider answered a successful attempt (first chunk for streams).",
            ["agent", "provider"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "llmagents_tokens", "Tokens the providers reported, by direction (input, output).",
            ["agent", "provider", "direction"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "llmagents_cost_usd", "US dollars charged from real usage.",
            ["agent", "provider"], registry=r,
        )  # fmt: skip
        self.budget_limit = Gauge(
            "llmagents_budget_limit_usd", "The budget's limit per period, in US dollars.",
            ["agent"], registry=r,
        )  # fmt: skip
        self.budget_remaining = Gauge(
            "llmagents_budget_remaining_usd", "US dollars left in the current budget period.",
            ["agent"], registry=r,
        )  # fmt: skip
        self.breaker = Gauge(
            "llmagents_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["agent", "provider"], registry=r,
        )  # fmt: skip
        self.healthy = Gauge(
            "llmagents_provider_healthy",
            "1 when the provider may take calls (breaker closed, not misconfigured), else 0.",
            ["agent", "provider"], registry=r,
        )  # fmt: skip
        self.checkpoint_age = Gauge(
            "llmagents_checkpoint_age_seconds", "Seconds since the last checkpoint landed.",
            ["agent"], registry=r,
        )  # fmt: skip
        self.checkpoint_time = Gauge(
            "llmagents_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last checkpoint that landed.", ["agent"], registry=r,
        )  # fmt: skip
        self.checkpoint_size = Gauge(
            "llmagents_checkpoint_size_bytes", "Stored size of the last checkpoint.",
            ["agent"], registry=r,
        )  # fmt: skip
        self.checkpoint_failures = Counter(
            "llmagents_checkpoint_failures",
            "Checkpoint writes that failed (unavailable) or did not fit (too_large).",
            ["agent", "reason"], registry=r,
        )  # fmt: skip
        self.tasks = Counter(
            "llmagents_tasks", "Tasks that ended, by outcome (done, failed).",
            ["agent", "outcome"], registry=r,
        )  # fmt: skip
        self.gateway = Counter(
            "llmagents_gateway_requests",
            "Chat requests the local gateway served, by mode (plain, stream) and HTTP code.",
            ["agent", "mode", "code"], registry=r,
        )  # fmt: skip
        self.status_failures = Counter(
            "llmagents_status_write_failures",
            "Status writes that failed (retried with the latest status).", ["agent"], registry=r,
        )  # fmt: skip
        self.journal_failing = Gauge(
            "llmagents_spend_journal_failing",
            "1 while charges cannot be written to the spend journal (the SpendJournalFailing "
            "condition: a kill now loses the spend since the last checkpoint), else 0.",
            ["agent"], registry=r,
        )  # fmt: skip
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(agent, *labels)``, looked up once per label set."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.agent, *labels)
        return child

    # -- engine events ----------------------------------------------------------------------

    def on_attempt(self, record: AttemptRecord) -> None:
        self._child(self.requests, record.provider, record.outcome).inc()
        if record.error is None:
            self._child(self.duration, record.provider).observe(record.latency)
        else:
            self._child(self.failures, record.provider, record.error.kind.value).inc()

    def on_fallback(self, fallback: Fallback) -> None:
        self.fallbacks.labels(
            self.agent, fallback.from_provider, fallback.to_provider, fallback.reason
        ).inc()

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        self.breaker.labels(self.agent, provider).set(BREAKER_STATE_VALUES[transition.to_state])

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        self._child(self.tokens, provider, "input").inc(usage.input_tokens)
        self._child(self.tokens, provider, "output").inc(usage.output_tokens)
        self._child(self.cost, provider).inc(cost)

    # -- runner events ------------------------------------------------------------------------

    def stream_failed(self, provider: str, reason: str) -> None:
        self.failures.labels(self.agent, provider, reason).inc()

    def task_ended(self, *, ok: bool) -> None:
        self.tasks.labels(self.agent, "done" if ok else "failed").inc()

    def gateway_request(self, *, stream: bool, code: int) -> None:
        self._child(self.gateway, "stream" if stream else "plain", str(code)).inc()

    def providers(self, states: dict[str, tuple[BreakerState, bool]]) -> None:
        """Set each provider's breaker and health gauges: name -> (breaker, healthy)."""
        for name, (breaker, healthy) in states.items():
            self.breaker.labels(self.agent, name).set(BREAKER_STATE_VALUES[breaker])
            self.healthy.labels(self.agent, name).set(1 if healthy else 0)

    def budget(self, limit: float, remaining: Callable[[], float]) -> None:
        self.budget_limit.labels(self.agent).set(limit)
        self.budget_remaining.labels(self.agent).set_function(remaining)

    def checkpoint_source(self, age: Callable[[], float | None]) -> None:
        """Compute ``llmagents_checkpoint_age_seconds`` at scrape time (NaN before the first)."""
        self.checkpoint_age.labels(self.agent).set_function(lambda: _or_nan(age()))

    def spend_journal_source(self, failure: Callable[[], str | None]) -> None:
        """Compute ``llmagents_spend_journal_failing`` at scrape time from the journal's
        ``failure`` (the same source as the SpendJournalFailing condition)."""
        self.journal_failing.labels(self.agent).set_function(
            lambda: 0.0 if failure() is None else 1.0
        )

    def checkpoint_written(self, *, unix_time: float, size: int) -> None:
        self.checkpoint_time.labels(self.agent).set(unix_time)
        self.checkpoint_size.labels(self.agent).set(size)

    def checkpoint_failed(self, reason: str) -> None:
        self.checkpoint_failures.labels(self.agent, reason).inc()

    def status_write_failed(self) -> None:
        self.status_failures.labels(self.agent).inc()


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
