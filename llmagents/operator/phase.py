"""The operator's verdict on an agent: phase, conditions, replicas, and when to look again.

A pure function of the agent (spec and the runner's status), how its pool resolved, and
the time. The rules, first match wins:

1. spec the models reject -> Failed (InvalidSpec), nothing built;
2. pool or Secret missing or invalid -> Pending with the reason, nothing built;
3. ``suspend`` -> Suspended, 0 replicas;
4. runner reports the budget spent and onExhausted=stop -> BudgetExhausted, 0 replicas,
   until the budget period rolls over or the limit is raised;
5. maxRuntime passed since the runner's start (or the agent's creation) -> Completed
   (MaxRuntimeReached), 0 replicas;
6. every task ended -> Completed (TasksCompleted), 0 replicas, until the task list changes;
7. the gateway agent reported its work done -> Completed (AgentCompleted), 0 replicas,
   until the agent container's spec changes;
8. runner reports an unrecoverable error -> Failed;
9. no report from the runner yet -> Pending (RunnerStarting);
10. some provider unhealthy -> Degraded; otherwise Running.

Whatever the verdict, an agent whose pool resolved (its Secrets aside) also gets the pool's
``PriceUnknown`` condition (``operator.prices``), worded for its own budget.

Messages hold no clock readings, so the same situation always yields the same status and
the operator has nothing to write.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from llmagents.api.status import (
    AgentCompletion,
    Condition,
    ConditionStatus,
    LLMAgentStatus,
    Phase,
    RunnerPhase,
)
from llmagents.api.work import BudgetPeriod, OnExhausted
from llmagents.operator.objects import AgentObject

READY = "Ready"
POOL_RESOLVED = "PoolResolved"
PROVIDERS_HEALTHY = "ProvidersHealthy"
BUDGET_AVAILABLE = "BudgetAvailable"


@dataclass(frozen=True, slots=True)
class Resolution:
    """How the agent's pool resolved: ``reason`` is None when pool and Secrets are fine."""

    reason: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


RESOLVED = Resolution()


@dataclass(frozen=True, slots=True)
class CondSpec:
    """A condition before it gets its transition time."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass(slots=True)
class Verdict:
    phase: Phase
    replicas: int | None
    """Replicas of the runner Deployment; None = build nothing (leave what exists)."""
    conditions: list[CondSpec] = field(default_factory=list)
    requeue_after: float | None = None
    """Seconds until the verdict may change with no event (a deadline, a budget period)."""


def _true(type_: str, reason: str, message: str = "") -> CondSpec:
    return CondSpec(type_, ConditionStatus.TRUE, reason, message)


def _false(type_: str, reason: str, message: str = "") -> CondSpec:
    return CondSpec(type_, ConditionStatus.FALSE, reason, message)


def _unknown(type_: str, reason: str, message: str = "") -> CondSpec:
    return CondSpec(type_, ConditionStatus.UNKNOWN, reason, message)


def next_period_start(period: BudgetPeriod, start: datetime) -> datetime | None:
    """When a budget period that began at ``start`` ends; None for the whole life."""
    start = start.astimezone(UTC)
    if period is BudgetPeriod.DAILY:
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        return day + timedelta(days=1)
    if period is BudgetPeriod.MONTHLY:
        days = calendar.monthrange(start.year, start.month)[1]
        first = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return first + timedelta(days=days)
    return None


def _budget(agent: AgentObject, now: datetime) -> tuple[bool, CondSpec, float | None]:
    """(stop the runner?, BudgetAvailable condition, seconds until the period rolls)."""
    assert agent.spec is not None
    budget = agent.spec.budget
    status = agent.status
    if budget is None:
        return False, _true(BUDGET_AVAILABLE, "NoBudget", "no spending limit set"), None
    if not status.budget_exhausted:
        return False, _true(BUDGET_AVAILABLE, "WithinBudget"), None
    spent = status.cost.spent_usd if status.cost else 0.0
    # A hard cap is rarely spent to the cent: the runner also reports the budget exhausted
    # when what is left pays for no call. Only a limit above the one the runner enforced
    # means the user raised it (a runner that does not report its limit: above the spend).
    enforced = status.cost.limit_usd if status.cost else None
    if budget.limit > (enforced if enforced is not None else spent):
        return False, _true(BUDGET_AVAILABLE, "LimitRaised"), None
    period_start = status.cost.period_start if status.cost else None
    rollover = next_period_start(budget.period, period_start) if period_start else None
    if rollover is not None and now >= rollover:
        return False, _true(BUDGET_AVAILABLE, "PeriodRolledOver"), None
    wait = (rollover - now).total_seconds() if rollover else None
    if budget.on_exhausted is OnExhausted.LOCAL_ONLY:
        return (
            False,
            _false(BUDGET_AVAILABLE, "LocalOnly", "budget spent; running on free providers only"),
            wait,
        )
    message = f"spent {spent:.4f} of {budget.limit:.4f} USD ({budget.period.value})"
    if spent < budget.limit:
        message += "; what is left pays for no call"
    return True, _false(BUDGET_AVAILABLE, "BudgetExhausted", message), wait


def _health(status: LLMAgentStatus) -> CondSpec:
    if status.providers is None:
        return _unknown(PROVIDERS_HEALTHY, "NoReport", "the runner has not reported yet")
    sick = [p.name for p in status.providers if not p.healthy]
    if not sick:
        return _true(PROVIDERS_HEALTHY, "AllHealthy")
    misconfigured = [p.name for p in status.providers if p.misconfigured]
    reason = "ProvidersMisconfigured" if misconfigured else "ProvidersUnhealthy"
    return _false(PROVIDERS_HEALTHY, reason, "unhealthy: " + ", ".join(sorted(sick)))


def _tasks_finished(agent: AgentObject) -> bool:
    assert agent.spec is not None
    tasks = agent.spec.work.tasks
    progress = agent.status.tasks
    if tasks is None or progress is None:
        return False
    # A changed task list (new total) means there is new work, whatever the runner said.
    return progress.total == len(tasks) and progress.finished


def _agent_completion(agent: AgentObject) -> AgentCompletion | None:
    """The gateway agent's completion, if it was reported for the container in the spec."""
    assert agent.spec is not None
    completion = agent.status.completion
    # A completion reported by an earlier container (another digest) is of other work.
    if completion is None or completion.agent_digest != agent.spec.work.agent_digest():
        return None
    return completion


def decide(
    agent: AgentObject,
    resolution: Resolution,
    now: datetime,
    *,
    price: CondSpec | None = None,
) -> Verdict:
    """The verdict for ``agent`` at ``now`` (see the module docstring for the rules);
    ``price``, the pool's ``PriceUnknown`` condition as it applies to this agent, is added
    to whatever the verdict is, a Pending one included: it needs no runner."""
    verdict = _decide(agent, resolution, now)
    if price is not None and agent.spec is not None:
        verdict.conditions.append(price)
    return verdict


def _decide(agent: AgentObject, resolution: Resolution, now: datetime) -> Verdict:
    if agent.spec is None:
        return Verdict(
            Phase.FAILED,
            None,
            [_false(READY, "InvalidSpec", agent.error or "the spec is invalid")],
        )
    if not resolution.ok:
        assert resolution.reason is not None
        return Verdict(
            Phase.PENDING,
            None,
            [
                _false(READY, resolution.reason, resolution.message),
                _false(POOL_RESOLVED, resolution.reason, resolution.message),
            ],
        )
    spec, status = agent.spec, agent.status
    pool = _true(POOL_RESOLVED, "Resolved")
    health = _health(status)
    stop_for_budget, budget, budget_wait = _budget(agent, now)
    common = [pool, health, budget]

    if spec.suspend:
        return Verdict(Phase.SUSPENDED, 0, [_false(READY, "Suspended"), *common])
    if stop_for_budget:
        return Verdict(
            Phase.BUDGET_EXHAUSTED, 0, [_false(READY, "BudgetExhausted"), *common], budget_wait
        )
    deadline_wait = None
    if spec.max_runtime is not None:
        started = status.started_at or agent.created
        deadline = started + spec.max_runtime
        if now >= deadline:
            return Verdict(Phase.COMPLETED, 0, [_false(READY, "MaxRuntimeReached"), *common])
        deadline_wait = (deadline - now).total_seconds()
    wait = min((w for w in (budget_wait, deadline_wait) if w is not None), default=None)
    if _tasks_finished(agent):
        failed = status.tasks.failed if status.tasks else 0
        message = f"{failed} task(s) failed" if failed else "all tasks done"
        return Verdict(Phase.COMPLETED, 0, [_false(READY, "TasksCompleted", message), *common])
    completion = _agent_completion(agent)
    if completion is not None:
        message = "the agent reported its work done"
        if completion.summary:
            message += f": {completion.summary}"
        return Verdict(Phase.COMPLETED, 0, [_false(READY, "AgentCompleted", message), *common])
    if status.runner_phase is RunnerPhase.FAILED:
        message = status.message or "the runner stopped on an error"
        return Verdict(Phase.FAILED, 1, [_false(READY, "RunnerFailed", message), *common], wait)
    if status.providers is None:
        return Verdict(Phase.PENDING, 1, [_false(READY, "RunnerStarting"), *common], wait)
    if health.status is not ConditionStatus.TRUE:
        return Verdict(Phase.DEGRADED, 1, [_true(READY, "Degraded"), *common], wait)
    return Verdict(Phase.RUNNING, 1, [_true(READY, "Running"), *common], wait)


def conditions(
    wanted: list[CondSpec],
    previous: list[Condition] | None,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Kubernetes conditions from ``wanted``, keeping lastTransitionTime while the status
    stays the same."""
    before = {c.type: c for c in previous or []}
    out = []
    for spec in wanted:
        old = before.get(spec.type)
        since = old.last_transition_time if old and old.status == spec.status else now
        out.append(
            Condition(
                type=spec.type,
                status=spec.status,
                reason=spec.reason,
                message=spec.message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return out


def same_conditions(a: list[Condition] | None, b: list[Condition] | None) -> bool:
    """Equal but for transition times, which follow from the rest."""

    def key(items: list[Condition] | None) -> list[tuple[Any, ...]]:
        return sorted(
            (c.type, c.status, c.reason, c.message, c.observed_generation) for c in items or []
        )

    return key(a) == key(b)
