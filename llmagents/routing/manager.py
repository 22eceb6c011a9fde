"""``ProviderManager``: one call through the pool, with fallback, retries, breakers and budget.

``execute`` orders the providers the call may use (strategy, complexity, misconfiguration),
then walks that order. At each provider it asks the breaker for admission, the budget whether
the attempt's estimated cost fits, and the deadline whether the provider's timeout fits, then
lets the caller's function make the attempt. A retryable error is retried at the same provider
after a backoff while its retry count, its breaker and the deadline allow; a misconfiguration
error moves on at once and marks the provider; a refused request (its content) moves on at
once and marks nothing. The first answer wins; its real usage is
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
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from llmagents.api.pool import ProviderPoolSpec, Strategy
from llmagents.api.work import BudgetSpec
from llmagents.chat import Capability, Usage
from llmagents.errors import CapabilityUnavailable, MalformedResponse, ProviderError
from llmagents.routing import clock as clocks
from llmagents.routing import strategies
from llmagents.routing.backoff import RetryPolicy
from llmagents.routing.breaker import Admission, BreakerState
from llmagents.routing.budget import output_limit as budget_output_limit
from llmagents.routing.calls import (
    BUDGET_OUTPUT_LIMIT,
    Attempt,
    AttemptRecord,
    CallResult,
    CallTask,
    R,
    SkipReason,
)
from llmagents.routing.costs import Price, token_cost, usage_problem
from llmagents.routing.listener import EngineListener
from llmagents.routing.pool_state import Defer, PoolState
from llmagents.routing.run import Run, admission_of, later_fits
from llmagents.routing.state import ProviderState

logger = logging.getLogger(__name__)

Call = Callable[[Attempt], Awaitable[R]]
"""The caller's function: make one attempt at ``attempt.provider`` within ``attempt.timeout``."""


class ProviderManager(PoolState):
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
        prices: Mapping[str, Price | None] | None = None,
        defer: Defer | None = None,
    ) -> None:
        """``strategy`` replaces the pool's; ``sleep`` and ``rng`` pace the retries; the rest
        is ``PoolState``'s."""
        super().__init__(pool, budget=budget, clock=clock, wall_clock=wall_clock,
                         listener=listener, agent=agent, prices=prices, defer=defer)  # fmt: skip
        self.strategy = strategy if strategy is not None else pool.strategy
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._retry = RetryPolicy(pool.retry)
        self._deadline = pool.call_deadline.total_seconds()
        self._by_priority = sorted(self._states.values(), key=lambda s: (s.priority, s.index))
        self._turn = 0

    # -- the call ---------------------------------------------------------------------------

    async def execute(self, task: CallTask, call: Call[R]) -> CallResult[R]:
        """Run ``call`` through the pool until one provider answers.

        Raises ``BudgetExhausted`` before any attempt when the budget is spent and set to stop
        (or when no provider's estimate fits), ``DeadlineExceeded`` when time ran out, and
        ``AllProvidersRefused`` when every provider that could take it refused the request
        itself, and ``AllProvidersFailed`` otherwise.
        """
        start = self._clock()
        run = Run(
            task.name,
            start,
            start + (task.deadline if task.deadline is not None else self._deadline),
        )
        budget = self.budget
        free_only = task.free_only
        if budget is not None and budget.exhausted():
            if not budget.local_only:
                raise budget.error()
            free_only = True
        order = self._order(task, free_only)
        needed = task.capabilities
        if needed and order and not any(needed <= s.capabilities for s in order):
            raise _capability_unavailable(needed, order)
        self._turn += 1
        for position, state in enumerate(order):
            if not needed <= state.capabilities:
                lacking = ", ".join(sorted(needed - state.capabilities))
                run.pass_over(state.name, SkipReason.CAPABILITY, f"lacks {lacking}")
                continue
            retry = 0
            waited = 0.0
            while True:
                admitted = self._admit(run, state, task, order, position)
                if admitted is None:
                    break
                admission, reserved, timeout, output_limit = admitted
                run.number += 1
                attempt = Attempt(
                    state.spec, run.number, retry, timeout, admission is Admission.PROBE,
                    output_limit,
                )  # fmt: skip
                if budget is not None:
                    budget.reserve(reserved)
                began = self._clock()
                try:
                    value = await call(attempt)
                except ProviderError as caught:
                    error = caught
                except BaseException:
                    state.breaker.release(admission)
                    if budget is not None:
                        budget.release(reserved)
                    raise
                else:
                    problem = usage_problem(value.usage) if value.usage is not None else None
                    if problem is None:
                        if budget is not None:
                            budget.release(reserved)
                        return self._answered(run, state, attempt, admission, value, began,
                                              waited)  # fmt: skip
                    # Never a refund, never an overflow: the answer is as broken as bad JSON.
                    error = MalformedResponse(f"reported usage: {problem}", provider=state.name)
                if budget is not None:
                    budget.release(reserved)
                if error.usage is not None and usage_problem(error.usage) is None:
                    self._charge(state.spec, error.usage)  # it answered; the answer was rejected
                wait = self._failed_attempt(
                    run, state, attempt, admission, error, began, waited, order, position
                )
                if wait is None:
                    break
                await self._sleep(wait)
                waited = wait
                retry += 1
            if run.out_of_time:
                break
        raise run.failure([s for s in order if needed <= s.capabilities], budget)

    def _admit(
        self,
        run: Run,
        state: ProviderState,
        task: CallTask,
        order: list[ProviderState],
        position: int,
    ) -> tuple[Admission, float, float, int | None] | None:
        """Admission, budget reservation, timeout and output limit of the next attempt at
        ``state``, or None when it is passed over."""
        now = self._clock()
        remaining = run.deadline - now
        if remaining <= 0:
            run.out_of_time = True
            return None
        breaker = state.breaker
        admission = breaker.admit(now)
        if admission is Admission.REFUSED:
            reason = (
                SkipReason.BREAKER_OPEN
                if breaker.state is BreakerState.OPEN
                else SkipReason.HALF_OPEN_BUSY
            )
            run.pass_over(state.name, reason, "")
            return None
        reserved = 0.0
        output_limit = task.max_output_tokens
        budget = self.budget
        if budget is not None and not state.free:
            price = state.price
            if price is None:
                # The budget is a hard cap: spend that cannot be counted cannot be allowed.
                breaker.release(admission)
                run.pass_over(state.name, SkipReason.PRICE_UNKNOWN, "set its pricing")
                return None
            estimate = state.estimate(task)
            # The worst case: the estimated input, and every output token the limit allows
            # (hidden reasoning is output too, and may be priced higher).
            rates = price.rates_for(task.budget_input_tokens)
            input_cost = token_cost(task.budget_input_tokens, 0, price)
            output_price = max(rates.output, rates.reasoning) / 1e6
            if budget.affordable(estimate):
                output_limit = budget_output_limit(
                    available=budget.available, input_cost=input_cost,
                    output_price=output_price, wanted=task.max_output_tokens or BUDGET_OUTPUT_LIMIT,
                )  # fmt: skip
            if not budget.affordable(estimate) or output_limit is None or output_limit < 1:
                budget.mark_full()
                breaker.release(admission)
                detail = f"estimated ${estimate:.6f}, ${budget.remaining:.6f} left"
                run.pass_over(state.name, SkipReason.BUDGET, detail)
                run.over_budget += 1
                return None
            reserved = input_cost + output_limit * output_price
        timeout = state.timeout
        if timeout > remaining:
            if later_fits(order, position, remaining, now):
                breaker.release(admission)
                detail = f"timeout {timeout:g}s, {remaining:g}s left"
                run.pass_over(state.name, SkipReason.DEADLINE, detail)
                run.deadline_hit = True
                return None
            timeout = remaining
        if run.left:
            run.fall_back(state.name, self._listener, self._agent)
        return admission, reserved, timeout, output_limit

    def _answered(
        self,
        run: Run,
        state: ProviderState,
        attempt: Attempt,
        admission: Admission,
        value: R,
        began: float,
        waited: float,
    ) -> CallResult[R]:
        ended = self._clock()
        latency = ended - began
        state.answered()
        usage = value.usage
        cost = 0.0
        # Without usage the answer is a stream that has only begun: its health sample and
        # breaker verdict wait for record_usage or record_stream_failure.
        if usage is not None:
            if self._defer is not None and admission is Admission.CALL:
                # A closed breaker's success and the health sample: nothing the answer
                # waits for. A probe's settles the half-open breaker at once.
                self._defer(partial(state.succeeded, ended, admission, latency))
            else:
                state.succeeded(ended, admission, latency)
            cost = self._charge(state.spec, usage)
        run.attempted(
            AttemptRecord(
                state.name, attempt.number, attempt.retry, latency, waited, attempt.probe
            ),
            self._listener,
        )
        self.current_provider = state.name
        return CallResult(
            state.name,
            value,
            run.attempts,
            run.fallbacks,
            ended - run.start,
            usage,
            cost,
            usage is not None,
        )

    def _failed_attempt(
        self,
        run: Run,
        state: ProviderState,
        attempt: Attempt,
        admission: Admission,
        error: ProviderError,
        began: float,
        waited: float,
        order: list[ProviderState],
        position: int,
    ) -> float | None:
        """Record a failed attempt; returns the wait before retrying, or None to move on."""
        ended = self._clock()
        latency = ended - began
        state.failed(ended, admission, error, latency)
        run.attempted(
            AttemptRecord(
                state.name, attempt.number, attempt.retry, latency, waited, attempt.probe, error
            ),
            self._listener,
        )
        run.last_errors[state.name] = error
        kind = error.kind
        if (
            not error.retryable
            or state.breaker.state is not BreakerState.CLOSED
            or attempt.retry >= self._retry.retries_for(kind, state.spec.max_retries)
        ):
            run.pass_over(state.name, kind.value, error.detail)
            return None
        wait = self._retry.delay(attempt.retry, self._rng, error.retry_after)
        remaining = run.deadline - ended
        if wait >= remaining or (
            state.timeout > remaining - wait and later_fits(order, position, remaining, ended)
        ):
            run.pass_over(state.name, kind.value, error.detail)
            run.deadline_hit = True
            return None
        return wait

    def _order(self, task: CallTask, free_only: bool) -> list[ProviderState]:
        members = self._by_priority
        allowed = task.providers
        if free_only or allowed is not None:
            members = [
                m
                for m in members
                if (m.free or not free_only) and (allowed is None or m.name in allowed)
            ]
        return strategies.order(self.strategy, members, task, turn=self._turn)

    def plan(self, task: CallTask) -> list[str]:
        """The order in which ``execute`` would try providers for ``task`` right now."""
        free_only = task.free_only or (
            self.budget is not None and self.budget.local_only and self.budget.exhausted()
        )
        return [s.name for s in self._order(task, free_only)]

    # -- settling streams -------------------------------------------------------------------

    def record_usage(
        self, result: CallResult[Any], usage: Usage, *, price: Price | None = None
    ) -> float:
        """Settle a stream that ended well: charge its usage and count the success; returns the cost.

        ``price`` replaces the provider's chat price (an embedding model's price).

        A result whose answer came without usage must be settled exactly once, by this or by
        ``record_stream_failure``; until then it holds its probe slot if it was a probe. A
        second settlement raises ``ValueError``, so that no cost is ever counted twice. When
        the client goes away mid-stream, settle with the usage so far: the provider did fine.
        Usage that cannot be charged (``costs.usage_problem``) raises ``MalformedResponse``
        and settles nothing: settle the stream as a failure instead.
        """
        problem = usage_problem(usage)
        if problem is not None:
            raise MalformedResponse(f"reported usage: {problem}", provider=result.provider)
        state = self._settle(result)
        state.succeeded(self._clock(), admission_of(result), result.attempts[-1].latency)
        result.usage = usage
        result.cost = self._charge(state.spec, usage, price)
        return result.cost

    def record_stream_failure(
        self, result: CallResult[Any], error: ProviderError, usage: Usage | None = None
    ) -> float:
        """Settle a stream that broke after its first byte: a failure of the provider.

        ``usage``, when the provider reported any before breaking, is charged; returns the cost.
        """
        if usage is not None and usage_problem(usage) is not None:
            raise ValueError(f"usage of a broken stream: {usage_problem(usage)}")
        state = self._settle(result)
        state.failed(self._clock(), admission_of(result), error, result.attempts[-1].latency)
        if usage is not None:
            result.usage = usage
            result.cost = self._charge(state.spec, usage)
        return result.cost

    def _settle(self, result: CallResult[Any]) -> ProviderState:
        if result.settled:
            raise ValueError(f"the call to {result.provider} was already settled")
        result.settled = True
        return self._states[result.provider]


def _capability_unavailable(
    needed: frozenset[Capability], order: list[ProviderState]
) -> CapabilityUnavailable:
    lacking = sorted({c.value for s in order for c in needed - s.capabilities})
    considered = [s.name for s in order]
    by_provider = "; ".join(
        f"{s.name} lacks {', '.join(sorted(needed - s.capabilities))}" for s in order
    )
    return CapabilityUnavailable(
        f"no provider this call may use supports {', '.join(lacking)} ({by_provider}); "
        "declare the capability in the pool's provider capabilities, or send the request "
        "without it",
        capabilities=lacking,
        considered=considered,
    )
