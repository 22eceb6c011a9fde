"""The operator's Kubernetes Events: what it decided about an agent, and what the fleet sees.

The runner records what happens inside an agent (``runner.events``); the operator records
what only it knows:

- ``Suspended`` (Normal) on an LLMAgent whose ``spec.suspend`` scaled it to zero, and
  ``Resumed`` when it runs again;
- ``CircuitOpened`` (Warning) on a ProviderPool when a provider becomes open for at least
  half of the agents reporting it (the rule by which runners open it too, ``runner.fleet``),
  and ``CircuitClosed`` (Normal) when it no longer is;
- ``PriceUnknown`` (Warning) on a ProviderPool when its condition of that name becomes true
  (a provider with neither pricing nor a table price, ``operator.prices``), and
  ``PricesKnown`` (Normal) when it no longer is.

Decisions compare the live status (what the operator wrote last, as the watch shows it)
with the new one, so a restarted operator records nothing twice. Recording never waits:
``EventRecorder`` writes in the background.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmagents.api.pool_status import PoolProviderStatus
from llmagents.api.status import API_VERSION, Condition, ConditionStatus, Phase
from llmagents.events import EventRecorder, EventType, Regarding
from llmagents.operator.objects import AgentObject, PoolObject

CONTROLLER = "llmagents.dev/operator"


def fleet_open(provider: PoolProviderStatus) -> bool:
    """Whether at least half the agents reporting a provider have its breaker open."""
    return provider.open_breakers > 0 and 2 * provider.open_breakers >= max(provider.agents, 1)


class OperatorEvents:
    """Records the operator's Events through one ``EventRecorder``."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder

    def agent_phase(self, agent: AgentObject, before: Phase | None, after: Phase) -> None:
        """The operator moved ``agent`` from phase ``before`` to ``after``."""
        if before == after:
            return
        regarding = Regarding(API_VERSION, "LLMAgent", agent.namespace, agent.name, agent.uid)
        if after is Phase.SUSPENDED:
            self.recorder.record(regarding, reason="Suspended",
                                 note="spec.suspend is true: runner scaled to zero")  # fmt: skip
        elif before is Phase.SUSPENDED:
            self.recorder.record(regarding, reason="Resumed",
                                 note=f"spec.suspend is false: phase {after.value}")  # fmt: skip

    def pool_providers(
        self,
        pool: PoolObject,
        before: Iterable[PoolProviderStatus] | None,
        after: Iterable[PoolProviderStatus],
    ) -> None:
        """The pool's providers went from ``before`` (live status) to ``after``."""
        was = {p.name: fleet_open(p) for p in before or []}
        regarding = Regarding(API_VERSION, "ProviderPool", pool.namespace, pool.name, pool.uid)
        for provider in after:
            now = fleet_open(provider)
            if now == was.get(provider.name, False):
                continue
            if now:
                since = (
                    f" since {provider.open_since.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                    if provider.open_since
                    else ""
                )
                note = (f"provider {provider.name}: circuit open for {provider.open_breakers} of "
                        f"{provider.agents} agents{since}; new and restarted agents skip it")  # fmt: skip
                self.recorder.record(regarding, reason="CircuitOpened", note=note,
                                     type=EventType.WARNING, key=provider.name)  # fmt: skip
            else:
                note = (f"provider {provider.name}: open for {provider.open_breakers} of "
                        f"{provider.agents} agents now")  # fmt: skip
                self.recorder.record(regarding, reason="CircuitClosed", note=note,
                                     key=provider.name)  # fmt: skip

    def pool_prices(
        self, pool: PoolObject, before: list[Condition] | None, after: list[Condition] | None
    ) -> None:
        """The pool's ``PriceUnknown`` condition went from ``before`` (live) to ``after``."""
        was, now = _price_unknown(before), _price_unknown(after)
        if now is None or (was is not None and was.status == now.status):
            return
        regarding = Regarding(API_VERSION, "ProviderPool", pool.namespace, pool.name, pool.uid)
        if now.status is ConditionStatus.TRUE:
            self.recorder.record(regarding, reason="PriceUnknown", note=now.message,
                                 type=EventType.WARNING)  # fmt: skip
        elif was is not None and was.status is ConditionStatus.TRUE:
            self.recorder.record(regarding, reason="PricesKnown", note=now.message)


def _price_unknown(conditions: list[Condition] | None) -> Condition | None:
    return next((c for c in conditions or [] if c.type == "PriceUnknown"), None)
