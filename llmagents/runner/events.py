"""The runner's Kubernetes Events on its LLMAgent: what happened to its providers, budget and work.

``AgentEvents`` listens to the engine (breaker transitions, fallbacks, charged cost) and to
the runner (a provider found misconfigured, a fenced checkpoint, the task list done) and
records Events through an ``EventRecorder`` (``llmagents.events``), which aggregates repeats
into series and bounds the writes. Reasons a user can grep:

===================== ======= ==============================================================
reason                type    when
===================== ======= ==============================================================
CircuitOpened         Warning a provider's breaker opened (until when, and why)
CircuitClosed         Normal  a probe succeeded and the breaker closed again
FellBack              Normal  a call moved from one provider to another (series per pair)
ProviderMisconfigured Warning a provider refused the key, the model or the request
BudgetLow             Warning 80% of the period's budget is spent
BudgetExhausted       Warning the period's budget is spent, or too little is left for a call
CheckpointFenced      Warning a newer runner took over; this one stops writing
TasksCompleted        Normal  every task of the list ended (Warning when some failed)
AgentCompleted        Normal  the gateway agent reported its work done
===================== ======= ==============================================================

Notes never carry a key: they pass through the runner's redactor. ``KubeEventSink`` is the
only place Events meet the runner's Kubernetes client.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from llmagents.api.status import API_VERSION
from llmagents.chat import Usage
from llmagents.events import EventExists, EventGone, EventRecorder, EventType, Regarding
from llmagents.kube import KubeClient, KubeConflict, KubeNotFound
from llmagents.routing import BreakerState, EngineListener, Fallback, ProviderManager, Transition

logger = logging.getLogger(__name__)

CONTROLLER = "llmagents.dev/runner"
BUDGET_LOW_SHARE = 0.8
"""Share of the budget spent at which ``BudgetLow`` is recorded."""


class KubeEventSink:
    """``events.k8s.io/v1`` Events through the runner's client (its Role allows create,
    patch and list of events in its namespace)."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        try:
            await self.kube.request("POST", _path(namespace), body=body,
                                    content_type="application/json")  # fmt: skip
        except KubeConflict:
            raise EventExists(body["metadata"]["name"]) from None

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        answer = await self.kube.request(
            "GET", _path(namespace), params={"fieldSelector": field_selector, "limit": "500"}
        )
        return list(answer.get("items") or [])

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:
            await self.kube.merge_patch(f"{_path(namespace)}/{name}", patch)
        except KubeNotFound:
            raise EventGone(name) from None


def _path(namespace: str) -> str:
    return f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"


def instance_name() -> str:
    """This runner's reportingInstance: the pod's name (its hostname)."""
    return socket.gethostname()


class AgentEvents(EngineListener):
    """Turns what the engine and runner report into Events on the agent."""

    def __init__(
        self,
        recorder: EventRecorder,
        *,
        name: str,
        namespace: str,
        uid: str | None,
        manager: ProviderManager | None = None,
    ) -> None:
        self.recorder = recorder
        self.regarding = Regarding(API_VERSION, "LLMAgent", namespace, name, uid)
        self.manager = manager
        self._misconfigured: dict[str, str | None] = {}
        self._budget_marks: set[tuple[str, object]] = set()

    def _record(self, reason: str, note: str, *, warning: bool = False, key: str = "") -> None:
        type_ = EventType.WARNING if warning else EventType.NORMAL
        self.recorder.record(self.regarding, reason=reason, note=note, type=type_, key=key)

    # -- engine events -----------------------------------------------------------------------

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        if transition.to_state is BreakerState.OPEN:
            until = ""
            at = self.manager.open_until(provider) if self.manager is not None else None
            if at is not None:
                until = f" until {at.strftime('%H:%M:%SZ')}"
            self._record("CircuitOpened", f"provider {provider}: circuit open{until}: "
                         f"{transition.reason}", warning=True, key=provider)  # fmt: skip
        elif transition.to_state is BreakerState.CLOSED:
            self._record("CircuitClosed", f"provider {provider}: circuit closed: "
                         f"{transition.reason}", key=provider)  # fmt: skip

    def on_fallback(self, fallback: Fallback) -> None:
        detail = f": {fallback.detail}" if fallback.detail else ""
        self._record(
            "FellBack",
            f"fell back from {fallback.from_provider} to {fallback.to_provider} "
            f"({fallback.reason}{detail})",
            key=f"{fallback.from_provider}>{fallback.to_provider}",
        )

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        if cost > 0:
            self.budget_checked()

    def budget_checked(self) -> None:
        """Record BudgetLow and BudgetExhausted once per budget period, when they become true.

        Exhausted is the budget's own verdict: spent, or too little left for any call."""
        budget = self.manager.budget if self.manager is not None else None
        if budget is None:
            return
        exhausted = budget.exhausted()  # rolls the period first
        period = (budget.period.value, budget.period_start)
        spent, limit = budget.spent, budget.limit
        if exhausted and ("exhausted", period) not in self._budget_marks:
            self._budget_marks.add(("exhausted", period))
            self._record("BudgetExhausted", f"spent ${spent:.4f} of ${limit:g} "
                         f"({budget.period.value}); onExhausted: {budget.on_exhausted.value}",
                         warning=True)  # fmt: skip
        elif spent >= BUDGET_LOW_SHARE * limit and ("low", period) not in self._budget_marks:
            self._budget_marks.add(("low", period))
            self._record("BudgetLow", f"spent ${spent:.4f} of ${limit:g} "
                         f"({spent / limit:.0%}, {budget.period.value})", warning=True)  # fmt: skip

    # -- runner events -----------------------------------------------------------------------

    def providers_checked(self, misconfigured: dict[str, str | None]) -> None:
        """The runner's periodic look at providers: name -> why it is misconfigured, or None."""
        for name, why in misconfigured.items():
            if why is not None and self._misconfigured.get(name) != why:
                self._record("ProviderMisconfigured", f"provider {name}: {why}",
                             warning=True, key=name)  # fmt: skip
            self._misconfigured[name] = why

    def fenced(self, detail: str) -> None:
        self._record("CheckpointFenced", f"a newer runner took over the checkpoint; this one "
                     f"stops working and writing: {detail}", warning=True)  # fmt: skip

    def agent_completed(self, summary: str | None) -> None:
        self._record("AgentCompleted", "the agent reported its work done"
                     + (f": {summary}" if summary else ""))  # fmt: skip

    def tasks_completed(self, done: int, failed: int) -> None:
        self._record("TasksCompleted", f"{done} task(s) done, {failed} failed",
                     warning=failed > 0)  # fmt: skip
