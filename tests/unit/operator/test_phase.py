"""The operator's verdict: phase, replicas and conditions for every situation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operator_samples import agent_body

from llmagents.api.status import Condition, ConditionStatus, Phase
from llmagents.api.work import BudgetPeriod
from llmagents.operator.objects import AgentObject
from llmagents.operator.phase import (
    RESOLVED,
    Resolution,
    conditions,
    decide,
    next_period_start,
    same_conditions,
)

CREATED = datetime(2030, 1, 1, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=10)
HEALTHY = [{"name": "claude", "healthy": True}, {"name": "local", "healthy": True}]


def _agent(status: dict | None = None, **spec) -> AgentObject:
    body = agent_body(**spec)
    body["status"] = status or {}
    return AgentObject.from_body(body)


def _conds(verdict) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status.value, c.reason) for c in verdict.conditions}


def test_a_reporting_runner_with_healthy_providers_is_running():
    verdict = decide(_agent({"providers": HEALTHY}), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.RUNNING, 1)
    assert _conds(verdict) == {
        "Ready": ("True", "Running"),
        "PoolResolved": ("True", "Resolved"),
        "ProvidersHealthy": ("True", "AllHealthy"),
        "BudgetAvailable": ("True", "NoBudget"),
    }


def test_before_the_runner_reports_the_agent_is_pending_but_deployed():
    verdict = decide(_agent(), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.PENDING, 1)
    assert _conds(verdict)["ProvidersHealthy"] == ("Unknown", "NoReport")


def test_an_unhealthy_provider_degrades_the_agent_but_keeps_it_running():
    providers = [{"name": "claude", "healthy": False, "breakerState": "open"}, HEALTHY[1]]
    verdict = decide(_agent({"providers": providers}), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.DEGRADED, 1)
    assert _conds(verdict)["ProvidersHealthy"] == ("False", "ProvidersUnhealthy")
    assert "claude" in next(c.message for c in verdict.conditions if c.type == "ProvidersHealthy")


def test_a_missing_pool_builds_nothing_and_says_why():
    resolution = Resolution("PoolNotFound", "ProviderPool 'pool' does not exist in this namespace")
    verdict = decide(_agent(), resolution, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.PENDING, None)
    assert _conds(verdict) == {
        "Ready": ("False", "PoolNotFound"),
        "PoolResolved": ("False", "PoolNotFound"),
    }


def test_an_invalid_spec_fails_without_building():
    body = agent_body()
    body["spec"]["work"] = {}
    verdict = decide(AgentObject.from_body(body), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.FAILED, None)
    assert _conds(verdict) == {"Ready": ("False", "InvalidSpec")}


def test_suspend_scales_to_zero():
    verdict = decide(_agent({"providers": HEALTHY}, suspend=True), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.SUSPENDED, 0)


def test_spent_budget_with_stop_scales_to_zero_until_the_day_rolls_over():
    status = {
        "providers": HEALTHY,
        "budgetExhausted": True,
        "cost": {"spentUSD": 1.0, "periodStart": "2030-01-01T00:00:00Z"},
    }
    agent = _agent(status, budget={"limit": 1.0, "period": "daily"})
    verdict = decide(agent, RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.BUDGET_EXHAUSTED, 0)
    assert verdict.requeue_after == (datetime(2030, 1, 2, tzinfo=UTC) - NOW).total_seconds()
    next_day = decide(agent, RESOLVED, datetime(2030, 1, 2, 0, 0, 1, tzinfo=UTC))
    assert next_day.replicas == 1
    assert _conds(next_day)["BudgetAvailable"] == ("True", "PeriodRolledOver")


def test_raising_the_limit_resumes_an_exhausted_agent():
    status = {"providers": HEALTHY, "budgetExhausted": True, "cost": {"spentUSD": 1.0}}
    verdict = decide(_agent(status, budget={"limit": 5.0}), RESOLVED, NOW)
    assert verdict.replicas == 1
    assert _conds(verdict)["BudgetAvailable"] == ("True", "LimitRaised")


def test_a_budget_with_room_for_no_call_stops_the_agent_until_the_limit_is_raised():
    # The hard cap leaves cents no call fits in: exhausted though spent < limit.
    status = {
        "providers": HEALTHY,
        "budgetExhausted": True,
        "cost": {"spentUSD": 0.007, "limitUSD": 0.012},
    }
    verdict = decide(_agent(status, budget={"limit": 0.012}), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.BUDGET_EXHAUSTED, 0)
    reason, message = _conds(verdict)["BudgetAvailable"][1], verdict.conditions
    assert reason == "BudgetExhausted"
    assert any("pays for no call" in (c.message or "") for c in message)
    raised = decide(_agent(status, budget={"limit": 0.02}), RESOLVED, NOW)
    assert raised.replicas == 1
    assert _conds(raised)["BudgetAvailable"] == ("True", "LimitRaised")


def test_spent_budget_with_local_only_keeps_running_on_free_providers():
    status = {"providers": HEALTHY, "budgetExhausted": True, "cost": {"spentUSD": 1.0}}
    agent = _agent(status, budget={"limit": 1.0, "onExhausted": "local-only"})
    verdict = decide(agent, RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.RUNNING, 1)
    assert _conds(verdict)["BudgetAvailable"] == ("False", "LocalOnly")


def test_max_runtime_counts_from_the_runner_start_and_completes_the_agent():
    started = {"providers": HEALTHY, "startedAt": "2030-01-01T00:05:00Z"}
    running = decide(_agent(started, maxRuntime="10m"), RESOLVED, NOW)
    assert running.replicas == 1 and running.requeue_after == 300.0
    done = decide(_agent(started, maxRuntime="5m"), RESOLVED, NOW)
    assert (done.phase, done.replicas) == (Phase.COMPLETED, 0)
    assert _conds(done)["Ready"] == ("False", "MaxRuntimeReached")


def test_finished_tasks_complete_the_agent_until_the_list_changes():
    status = {"providers": HEALTHY, "tasks": {"done": 1, "failed": 1, "total": 2}}
    verdict = decide(_agent(status), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.COMPLETED, 0)
    assert "1 task(s) failed" in verdict.conditions[0].message
    more_work = {"tasks": [{"name": n, "prompt": n} for n in ("t1", "t2", "t3")]}
    assert decide(_agent(status, work=more_work), RESOLVED, NOW).replicas == 1


def _gateway_work(image: str = "example.com/agent:1") -> dict:
    return {"agent": {"image": image, "args": ["--loop"]}}


def test_a_gateway_agent_reporting_completion_completes_until_its_container_changes():
    work = _gateway_work()
    digest = AgentObject.from_body(agent_body(work=work)).spec.work.agent_digest()
    completion = {
        "completedAt": "2030-01-01T00:09:00Z",
        "summary": "report written",
        "agentDigest": digest,
    }
    status = {
        "providers": HEALTHY,
        "runnerPhase": "Completed",
        "completion": completion,
        "cost": {"spentUSD": 0.25, "totalUSD": 0.25},
    }
    verdict = decide(_agent(status, work=work), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.COMPLETED, 0)
    assert _conds(verdict)["Ready"] == ("False", "AgentCompleted")
    assert verdict.conditions[0].message == "the agent reported its work done: report written"
    # Raising the budget is not new work: still completed.
    budget = {"limit": 5, "period": "total", "onExhausted": "stop"}
    assert decide(_agent(status, work=work, budget=budget), RESOLVED, NOW).replicas == 0
    # A new image is: the runner runs again (and drops the old completion).
    changed = decide(_agent(status, work=_gateway_work("example.com/agent:2")), RESOLVED, NOW)
    assert (changed.phase, changed.replicas) == (Phase.RUNNING, 1)


def test_a_gateway_agent_that_reported_nothing_keeps_running():
    status = {"providers": HEALTHY, "runnerPhase": "Running"}
    verdict = decide(_agent(status, work=_gateway_work()), RESOLVED, NOW)
    assert (verdict.phase, verdict.replicas) == (Phase.RUNNING, 1)


def test_a_runner_reporting_failure_fails_the_agent():
    status = {"providers": HEALTHY, "runnerPhase": "Failed", "message": "config unreadable"}
    verdict = decide(_agent(status), RESOLVED, NOW)
    assert verdict.phase is Phase.FAILED
    assert verdict.conditions[0].message == "config unreadable"


def test_transition_time_stays_while_the_status_stays():
    earlier = NOW - timedelta(hours=1)
    previous = [
        Condition(type="Ready", status="True", reason="Running", last_transition_time=earlier)
    ]
    verdict = decide(_agent({"providers": HEALTHY}), RESOLVED, NOW)
    same = conditions(verdict.conditions, previous, generation=1, now=NOW)
    assert same[0].last_transition_time == earlier
    flipped = decide(_agent({"providers": HEALTHY}, suspend=True), RESOLVED, NOW)
    changed = conditions(flipped.conditions, previous, generation=1, now=NOW)
    assert changed[0].last_transition_time == NOW
    assert changed[0].status is ConditionStatus.FALSE


def test_conditions_compare_equal_regardless_of_transition_time():
    verdict = decide(_agent({"providers": HEALTHY}), RESOLVED, NOW)
    a = conditions(verdict.conditions, None, generation=1, now=NOW)
    b = conditions(verdict.conditions, None, generation=1, now=NOW + timedelta(days=1))
    assert same_conditions(a, b)
    assert not same_conditions(a, conditions(verdict.conditions, None, generation=2, now=NOW))


def test_budget_periods_end_at_utc_day_and_month_boundaries():
    start = datetime(2030, 2, 14, 13, 0, tzinfo=UTC)
    assert next_period_start(BudgetPeriod.DAILY, start) == datetime(2030, 2, 15, tzinfo=UTC)
    assert next_period_start(BudgetPeriod.MONTHLY, start) == datetime(2030, 3, 1, tzinfo=UTC)
    assert next_period_start(BudgetPeriod.TOTAL, start) is None
