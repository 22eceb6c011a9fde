"""The bookkeeping of one ``execute`` call: its attempts, fallbacks, and why it ended.

Kept apart from the manager so that the manager reads as the decision sequence of a call
while this module holds what the call has done so far and turns it into an answer's parts or
into the typed error that tells, provider by provider, why nobody answered.
"""

from __future__ import annotations

import logging
from typing import Any

from llmagents.errors import (
    AllProvidersFailed,
    AllProvidersRefused,
    DeadlineExceeded,
    ErrorKind,
    ProviderError,
)
from llmagents.routing.breaker import Admission, BreakerState
from llmagents.routing.budget import Budget
from llmagents.routing.calls import AttemptRecord, CallResult, Fallback, SkipReason
from llmagents.routing.listener import EngineListener
from llmagents.routing.state import ProviderState

logger = logging.getLogger(__name__)


class Run:
    """What one ``execute`` call has done so far."""

    __slots__ = (
        "attempts",
        "deadline",
        "deadline_hit",
        "fallbacks",
        "kinds",
        "last_errors",
        "left",
        "number",
        "out_of_time",
        "over_budget",
        "reasons",
        "start",
        "task",
    )

    def __init__(self, task: str, start: float, deadline: float) -> None:
        self.task = task
        """The task's name, for logs."""
        self.start = start
        self.deadline = deadline
        self.attempts: list[AttemptRecord] = []
        self.fallbacks: list[Fallback] = []
        self.reasons: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        """Why each provider was left, as an error kind or skip reason."""
        self.last_errors: dict[str, ProviderError] = {}
        self.left: list[tuple[str, str, str]] = []
        """Providers passed over since the last attempt: (name, reason, detail)."""
        self.number = 0
        self.out_of_time = False
        """The deadline has passed: nothing more can be tried."""
        self.deadline_hit = False
        """The deadline cut a retry short or passed a provider over."""
        self.over_budget = 0

    def pass_over(self, provider: str, reason: str, detail: str) -> None:
        """Leave ``provider`` for whichever provider is attempted next."""
        self.left.append((provider, reason, detail))
        self.reasons[provider] = f"{reason}: {detail}" if detail else reason
        self.kinds[provider] = reason

    def fall_back(self, to: str, listener: EngineListener | None, agent: str) -> None:
        """The call reached ``to``: the providers passed over become fallbacks to it."""
        for name, reason, detail in self.left:
            fallback = Fallback(name, to, reason, detail)
            self.fallbacks.append(fallback)
            logger.info(
                "agent %s: task %s fell back from %s to %s (%s)",
                agent,
                self.task or "-",
                name,
                to,
                reason,
            )
            if listener is not None:
                listener.on_fallback(fallback)
        self.left.clear()

    def attempted(self, record: AttemptRecord, listener: EngineListener | None) -> None:
        self.attempts.append(record)
        if listener is not None:
            listener.on_attempt(record)

    def failure(self, order: list[ProviderState], budget: Budget | None) -> Exception:
        """The error that ends a call nobody answered."""
        if not order:
            return AllProvidersFailed(
                "no provider of the pool may take this call (free-only or provider filter); "
                "add a matching provider to the pool"
            )
        if budget is not None and self.over_budget == len(order):
            return budget.error("has no room for this call's estimated cost")
        summary = "; ".join(f"{name}: {why}" for name, why in self.reasons.items())
        details: dict[str, Any] = {
            "attempts": self.attempts,
            "last_errors": self.last_errors,
            "reasons": self.reasons,
        }
        if self.out_of_time or self.deadline_hit:
            return DeadlineExceeded(
                f"no answer within the call deadline ({summary or 'nothing tried'}); raise "
                "spec.callDeadline or lower provider timeouts",
                **details,
            )
        if self._refused_everywhere():
            return AllProvidersRefused(
                f"every provider refused the request ({summary}); change the request, or add "
                "a provider that accepts it",
                **details,
            )
        return AllProvidersFailed(f"all providers failed ({summary})", **details)

    def _refused_everywhere(self) -> bool:
        """Whether the providers that could take the call all refused the request itself:
        none was left for a reason of its own (breaker, deadline, budget, an outage)."""
        refused = ErrorKind.REQUEST_REFUSED.value
        kinds = self.kinds.values()
        return refused in kinds and all(k in (refused, SkipReason.CAPABILITY) for k in kinds)


def admission_of(result: CallResult[Any]) -> Admission:
    """The admission a result's last attempt held: a probe's slot is held until settled."""
    return Admission.PROBE if result.attempts[-1].probe else Admission.CALL


def later_fits(order: list[ProviderState], position: int, remaining: float, now: float) -> bool:
    """Whether a provider after ``position`` could still be tried with its full timeout."""
    for state in order[position + 1 :]:
        if state.timeout <= remaining and (
            state.breaker.state is not BreakerState.OPEN or state.breaker.open_until <= now
        ):
            return True
    return False
