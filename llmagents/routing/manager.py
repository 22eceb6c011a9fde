"""``ProviderManager``: one call through the pool, with fallback, retries, breakers and budget.

``execute`` orders the providers the call may use (strategy, complexity, misconfiguration),
then walks that order. At each provider it asks the breaker for admission, the budget whether
the attempt's estimated cost fits, and the deadline whether the provider's timeout fits, then
lets the caller's function make the attempt. A retryable error is retried at the same provider
after a backoff while its retry count, its breaker and the deadline allow; a misconfiguration
error moves on at once and marks the provider. The first answer wins; its real usage is
charged. If nobody answers, a typed error says why for each provider.

A ``ProviderError`` is the only failure the engine expects from the caller's function. Any
other exception is a bug in the caller: it propagates unchanged and the engine records
nothing about it (no health sample, no breaker evidence, no cost), because it says nothing
about the provider.

Everything here is synchronous bookkeeping between awaits on a single event loop, so no locks
are needed; concurrent calls interleave only at the caller's function and at backoff sleeps.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec, Strategy
from llmagents.api.work import BudgetSpec
from llmagents.chat import Usage
from llmagents.errors import AllProvidersFailed, DeadlineExceeded, ProviderError
from llmagents.routing import clock as clocks
from llmagents.routing import strategies
from llmagents.routing.backoff import RetryPolicy
from llmagents.routing.breaker import Admission, BreakerState, CircuitBreaker, Transition
from llmagents.routing.budget import Budget
from llmagents.routing.calls import (
    Attempt,
    AttemptRecord,
    CallResult,
    CallTask,
    Fallback,
    R,
    SkipReason,
)
from llmagents.routing.costs import CostLedger, Spend
from llmagents.routing.events import EngineListener
from llmagents.routing.health import Health
from llmagents.routing.snapshot import ProviderStatus, provider_status, restore_state, snapshot_state
from llmagents.routing.state import ProviderState

logger = logging.getLogger(__name__)

Call = Callable[[Attempt], Awaitable[R]]
"""The caller's function: make one attempt at ``attempt.provider`` within ``attempt.timeout``."""


class ProviderManager:
    """The fallback engine for one agent's provider pool."""

    def __init__(
        self,
        pool: ProviderPoolSpec,
        *,
        budget: BudgetSpec | None = None,
        strategy: Strategy | None = None,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
        sleep: clocks.Sleep = clocks.sleep,
        rng: random.Random | None = None,
        listener: EngineListener | None = None,
        agent: str = "",
    ) -> None:
        self.pool = pool
        self.strategy = strategy if strategy is not None else pool.strategy
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._listener = listener
        self._agent = agent or "-"
        self._retry = RetryPolicy(pool.retry)
        self._deadline = pool.call_deadline.total_seconds()
        interval = pool.health.probe_interval
        self._probe_interval = interval.total_seconds() if interval is not None else None
        on_transition = self._transitioned if listener is not None else None
        window = pool.health.window.total_seconds()
        self._states: dict[str, ProviderState] = {}
        for index, spec in enumerate(pool.providers):
            breaker = CircuitBreaker(
                spec.name, pool.circuit_breaker, wall_clock=wall_clock, on_transition=on_transition
            )
            self._states[spec.name] = ProviderState(
                spec, index=index, breaker=breaker, health=Health(window)
            )
        self._by_priority = sorted(self._states.values(), key=lambda s: (s.priority, s.index))
        self._ledger = CostLedger()
        self.budget = Budget(budget, wall_clock=wall_clock) if budget is not None else None
        self._turn = 0
        self.current_provider: str | None = None
        """The provider that answered the latest call."""

    # -- the call ---------------------------------------------------------------------------

    async def execute(self, task: CallTask, call: Call[R]) -> CallResult[R]:
        """Run ``call`` through the pool until one provider answers.

        Raises ``BudgetExhausted`` before any attempt when the budget is spent and set to stop
        (or when no provider's estimate fits), ``DeadlineExceeded`` when time ran out, and
        ``AllProvidersFailed`` otherwise.
        """
        clock = self._clock
        start = clock()
        deadline = start + (task.deadline if task.deadline is not None else self._deadline)
        budget = self.budget
        free_only = task.free_only
        if budget is not None and budget.exhausted():
            if not budget.local_only:
                raise budget.error()
            free_only = True
        order = self._order(task, free_only)
        self._turn += 1
        attempts: list[AttemptRecord] = []
        fallbacks: list[Fallback] = []
        reasons: dict[str, str] = {}
        last_errors: dict[str, ProviderError] = {}
        left: list[tuple[str, str, str]] = []  # providers passed over, until the next attempt
        number = 0
        out_of_time = False  # the deadline passed: nothing more can be tried
        deadline_hit = False  # the deadline cut a retry or passed a provider over
        over_budget = 0
        for position, state in enumerate(order):
            breaker = state.breaker
            retry = 0
            waited = 0.0
            while True:
                now = clock()
                remaining = deadline - now
                if remaining <= 0:
                    out_of_time = True
                    break
                admission = breaker.admit(now)
                if admission is Admission.REFUSED:
                    reason = (
                        SkipReason.BREAKER_OPEN
                        if breaker.state is BreakerState.OPEN
                        else SkipReason.HALF_OPEN_BUSY
                    )
                    self._pass_over(state, reason, "", left, reasons)
                    break
                estimate = 0.0
                if budget is not None:
                    estimate = state.estimate(task)
                    if not budget.affordable(estimate):
                        breaker.release(admission)
                        detail = f"estimated ${estimate:.6f}, ${budget.remaining:.6f} left"
                        self._pass_over(state, SkipReason.BUDGET, detail, left, reasons)
                        over_budget += 1
                        break
                timeout = state.timeout
                if timeout > remaining:
                    if _later_fits(order, position, remaining, now):
                        breaker.release(admission)
                        detail = f"timeout {timeout:g}s, {remaining:g}s left"
                        self._pass_over(state, SkipReason.DEADLINE, detail, left, reasons)
                        deadline_hit = True
                        break
                    timeout = remaining
                if left:
                    self._fell_back(left, state.name, fallbacks)
                number += 1
                attempt = Attempt(state.spec, number, retry, timeout, admission is Admission.PROBE)
                if budget is not None:
                    budget.reserve(estimate)
                began = clock()
                try:
                    value = await call(attempt)
                except ProviderError as caught:
                    error = caught
                except BaseException:
                    breaker.release(admission)
                    if budget is not None:
                        budget.release(estimate)
                    raise
                else:
                    ended = clock()
                    latency = ended - began
                    if budget is not None:
                        budget.release(estimate)
                    if state.misconfigured is not None:
                        logger.info("agent %s: provider %s answered again; no longer marked "
                                    "misconfigured", self._agent, state.name)
                        state.misconfigured = None
                    usage = value.usage
                    cost = 0.0
                    # Without usage the answer is a stream that has only begun: its health
                    # sample and breaker verdict wait for record_usage/record_stream_failure.
                    if usage is not None:
                        state.health.record(ended, ok=True, latency=latency)
                        breaker.record_success(ended, admission)
                        cost = self._charge(state.spec, usage)
                    self._attempted(attempts, AttemptRecord(
                        state.name, number, retry, latency, waited, attempt.probe))
                    self.current_provider = state.name
                    return CallResult(state.name, value, attempts, fallbacks, ended - start,
                                      usage, cost, usage is not None)
                ended = clock()
                latency = ended - began
                if budget is not None:
                    budget.release(estimate)
                self._failed(state, admission, error, ended, latency)
                self._attempted(attempts, AttemptRecord(
                    state.name, number, retry, latency, waited, attempt.probe, error))
                last_errors[state.name] = error
                kind = error.kind
                if (
                    not error.retryable
                    or breaker.state is not BreakerState.CLOSED
                    or retry >= self._retry.retries_for(kind, state.spec.max_retries)
                ):
                    self._pass_over(state, kind.value, error.message, left, reasons)
                    break
                wait = self._retry.delay(retry, self._rng, error.retry_after)
                remaining = deadline - ended
                if wait >= remaining or (
                    state.timeout > remaining - wait
                    and _later_fits(order, position, remaining, ended)
                ):
                    self._pass_over(state, kind.value, error.message, left, reasons)
                    deadline_hit = True
                    break
                await self._sleep(wait)
                waited = wait
                retry += 1
            if out_of_time:
                break
        if self.budget is not None and order and over_budget == len(order):
            raise self.budget.error("has no room for this call's estimated cost")
        raise self._no_answer(order, attempts, last_errors, reasons, out_of_time or deadline_hit)

    def _order(self, task: CallTask, free_only: bool) -> list[ProviderState]:
        members = self._by_priority
        allowed = task.providers
        if free_only or allowed is not None:
            members = [
                m for m in members
                if (m.free or not free_only) and (allowed is None or m.name in allowed)
            ]
        return strategies.order(self.strategy, members, task, turn=self._turn)

    def plan(self, task: CallTask) -> list[str]:
        """The order in which ``execute`` would try providers for ``task`` right now."""
        free_only = task.free_only or (
            self.budget is not None and self.budget.local_only and self.budget.exhausted()
        )
        return [s.name for s in self._order(task, free_only)]

    def _pass_over(
        self,
        state: ProviderState,
        reason: str,
        detail: str,
        left: list[tuple[str, str, str]],
        reasons: dict[str, str],
    ) -> None:
        left.append((state.name, reason, detail))
        reasons[state.name] = f"{reason}: {detail}" if detail else reason

    def _fell_back(
        self, left: list[tuple[str, str, str]], to: str, fallbacks: list[Fallback]
    ) -> None:
        for name, reason, detail in left:
            fallback = Fallback(name, to, reason, detail)
            fallbacks.append(fallback)
            logger.info("agent %s: fell back from %s to %s (%s)", self._agent, name, to, reason)
            if self._listener is not None:
                self._listener.on_fallback(fallback)
        left.clear()

    def _attempted(self, attempts: list[AttemptRecord], record: AttemptRecord) -> None:
        attempts.append(record)
        if self._listener is not None:
            self._listener.on_attempt(record)

    def _failed(
        self,
        state: ProviderState,
        admission: Admission,
        error: ProviderError,
        now: float,
        latency: float,
    ) -> None:
        state.health.record(now, ok=False, latency=latency)
        if error.misconfiguration:
            # Not a health problem of the provider: no retry or breaker opening can fix it.
            state.breaker.release(admission)
            state.misconfigured = f"{error.kind.value}: {error.message}"
            logger.warning("agent %s: provider %s looks misconfigured: %s", self._agent,
                           state.name, state.misconfigured)
        else:
            state.breaker.record_failure(now, admission, error.kind.value)

    def _charge(self, spec: ProviderSpec, usage: Usage) -> float:
        cost = self._ledger.add(spec.name, usage, spec.pricing)
        if self.budget is not None:
            self.budget.charge(cost)
        if self._listener is not None:
            self._listener.on_cost(spec.name, usage, cost)
        return cost

    def _no_answer(
        self,
        order: list[ProviderState],
        attempts: list[AttemptRecord],
        last_errors: dict[str, ProviderError],
        reasons: dict[str, str],
        deadline_hit: bool,
    ) -> Exception:
        if not order:
            return AllProvidersFailed(
                "no provider of the pool may take this call (free-only or provider filter); "
                "add a matching provider to the pool"
            )
        summary = "; ".join(f"{name}: {why}" for name, why in reasons.items()) or "none tried"
        if deadline_hit:
            return DeadlineExceeded(
                f"no answer within the call deadline ({summary}); raise spec.callDeadline or "
                "lower provider timeouts",
                attempts=attempts, last_errors=last_errors, reasons=reasons,
            )
        return AllProvidersFailed(
            f"all providers failed ({summary})",
            attempts=attempts, last_errors=last_errors, reasons=reasons,
        )

    # -- settling streams -------------------------------------------------------------------

    def record_usage(self, result: CallResult[Any], usage: Usage) -> float:
        """Settle a stream that ended well: charge its usage and count the success; returns the cost.

        A result whose answer came without usage must be settled exactly once, by this or by
        ``record_stream_failure``; until then it holds its probe slot if it was a probe. A
        second settlement raises ``ValueError``, so that no cost is ever counted twice. When
        the client goes away mid-stream, settle with the usage so far: the provider did fine.
        """
        state = self._settle(result)
        now = self._clock()
        state.health.record(now, ok=True, latency=result.attempts[-1].latency)
        state.breaker.record_success(now, _admission_of(result))
        result.usage = usage
        result.cost = self._charge(state.spec, usage)
        return result.cost

    def record_stream_failure(
        self, result: CallResult[Any], error: ProviderError, usage: Usage | None = None
    ) -> float:
        """Settle a stream that broke after its first byte: a failure of the provider.

        ``usage``, when the provider reported any before breaking, is charged; returns the cost.
        """
        state = self._settle(result)
        now = self._clock()
        self._failed(state, _admission_of(result), error, now, result.attempts[-1].latency)
        if usage is not None:
            result.usage = usage
            result.cost = self._charge(state.spec, usage)
        return result.cost

    def _settle(self, result: CallResult[Any]) -> ProviderState:
        if result.settled:
            raise ValueError(f"the call to {result.provider} was already settled")
        result.settled = True
        return self._states[result.provider]

    # -- fleet view, probes, status and checkpoints -------------------------------------------

    def force_open(self, provider: str, *, reason: str, until: clocks.datetime) -> None:
        """Open a provider's breaker until the wall time ``until`` (another agent saw it fail)."""
        now = self._clock()
        until_mono = clocks.to_monotonic(until, now=now, wall_now=self._wall_clock())
        self._states[provider].breaker.force_open(now, until_mono, reason)

    def due_probes(self, now: float | None = None) -> list[ProviderSpec]:
        """Providers whose last call or probe is older than ``health.probeInterval``.

        Paid providers only when ``health.probePaidProviders`` is set; none without an interval.
        """
        interval = self._probe_interval
        if interval is None:
            return []
        now = self._clock() if now is None else now
        paid = self.pool.health.probe_paid_providers
        due = []
        for state in self._states.values():
            if state.free or paid:
                last = state.health.last_activity
                if last is None or now - last >= interval:
                    due.append(state.spec)
        return due

    def record_probe(
        self, provider: str, *, ok: bool, latency: float, error: ProviderError | None = None
    ) -> None:
        """Take an active probe's outcome: health, breaker and misconfiguration mark."""
        state = self._states[provider]
        now = self._clock()
        state.health.record_probe(now, ok=ok, latency=latency)
        if ok:
            state.misconfigured = None
            state.breaker.on_probe(now, ok=True)
        elif error is not None and error.misconfiguration:
            state.misconfigured = f"{error.kind.value}: {error.message}"
        else:
            state.breaker.on_probe(now, ok=False, kind=error.kind.value if error else "failed")

    @property
    def spend(self) -> Spend:
        """Tokens and cost of every call since the agent started."""
        return self._ledger.total

    @property
    def spend_by_provider(self) -> dict[str, Spend]:
        return self._ledger.by_provider

    def transitions(self, provider: str) -> list[Transition]:
        """A provider's recent breaker transitions, oldest first."""
        return list(self._states[provider].breaker.transitions)

    def status(self) -> dict[str, ProviderStatus]:
        """Per provider, in pool order: health at a glance."""
        now, wall_now = self._clock(), self._wall_clock()
        return {
            name: provider_status(state, now=now, wall_now=wall_now)
            for name, state in self._states.items()
        }

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as JSON-ready data, for checkpoints and status."""
        return snapshot_state(
            self._states,
            ledger=self._ledger,
            budget=self.budget,
            current_provider=self.current_provider,
            now=self._clock(),
            wall_now=self._wall_clock(),
        )

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Take back a checkpoint: spend exactly, breakers as they would be by now."""
        self.current_provider = restore_state(
            snapshot,
            self._states,
            ledger=self._ledger,
            budget=self.budget,
            now=self._clock(),
            wall_now=self._wall_clock(),
        )

    def _transitioned(self, provider: str, transition: Transition) -> None:
        if self._listener is not None:
            self._listener.on_breaker_transition(provider, transition)


def _admission_of(result: CallResult[Any]) -> Admission:
    return Admission.PROBE if result.attempts[-1].probe else Admission.CALL


def _later_fits(order: list[ProviderState], position: int, remaining: float, now: float) -> bool:
    """Whether a provider after ``position`` could still be tried with its full timeout."""
    for state in order[position + 1 :]:
        if state.timeout <= remaining and (
            state.breaker.state is not BreakerState.OPEN or state.breaker.open_until <= now
        ):
            return True
    return False
