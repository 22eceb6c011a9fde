"""The operator's view of every agent as Prometheus gauges, for alerts that need no runner.

A runner that never started (pool missing, Secret missing, image not pulled) or that crashed
exports nothing, so alerts on the runners' own series stay silent exactly when an agent is
in trouble. The operator knows every agent, pod or not: it exports each agent's phase
(``llmagents_agent_phase``, 1 for the current phase, in the style of kube-state-metrics)
and when its runner last checkpointed, as the agent's status says
(``llmagents_agent_last_checkpoint_timestamp_seconds``). ``LLMAgentNotReady`` and
``LLMAgentCheckpointStale`` read these.

The series carry the agent's ``namespace``; the chart's operator ServiceMonitor sets
``honorLabels`` so that Prometheus keeps it rather than the operator pod's namespace.
A deleted agent's series are removed.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from llmagents.api.status import Phase

OPERATOR_METRIC_NAMES: frozenset[str] = frozenset(
    {
        "llmagents_agent_phase",
        "llmagents_agent_last_checkpoint_timestamp_seconds",
        "llmagents_operator_api_writes_total",
    }
)
"""Every metric family of the operator that dashboards and alerts may query."""


class AgentGauges:
    """Per agent: its phase and its last checkpoint time."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.phase = Gauge(
            "llmagents_agent_phase",
            "1 for the agent's current phase (Pending, Running, Degraded, BudgetExhausted, "
            "Completed, Suspended, Failed), as the operator decided it.",
            ["namespace", "agent", "phase"], registry=registry,
        )  # fmt: skip
        self.checkpoint = Gauge(
            "llmagents_agent_last_checkpoint_timestamp_seconds",
            "Unix time of the agent's last checkpoint, from its status (runner or not).",
            ["namespace", "agent"], registry=registry,
        )  # fmt: skip
        self._phases: dict[tuple[str, str], Phase] = {}
        self._checkpoints: dict[tuple[str, str], float] = {}

    def observe(
        self, namespace: str, agent: str, phase: Phase, last_checkpoint: datetime | None
    ) -> None:
        """The agent's phase and checkpoint now; called on every reconcile, cheap when
        nothing changed."""
        key = (namespace, agent)
        before = self._phases.get(key)
        if before is not phase:
            if before is not None:
                self.phase.remove(namespace, agent, before.value)
            self.phase.labels(namespace, agent, phase.value).set(1)
            self._phases[key] = phase
        if last_checkpoint is not None:
            stamp = last_checkpoint.timestamp()
            if self._checkpoints.get(key) != stamp:
                self.checkpoint.labels(namespace, agent).set(stamp)
                self._checkpoints[key] = stamp

    def forget(self, namespace: str, agent: str) -> None:
        key = (namespace, agent)
        phase = self._phases.pop(key, None)
        if phase is not None:
            self.phase.remove(namespace, agent, phase.value)
        if self._checkpoints.pop(key, None) is not None:
            self.checkpoint.remove(namespace, agent)


_default: AgentGauges | None = None


def default_gauges() -> AgentGauges:
    """The process's gauges in the default registry (the operator's /metrics), made once."""
    global _default
    if _default is None:
        _default = AgentGauges()
    return _default
