"""The operator's status writes: what it applies to an agent, and when a write is skipped.

The operator owns half of each status (phase, its conditions, observed generation,
strategy; the runner writes the rest). A write happens only when the desired half differs
from the operator's share of the live status (``ownership``), ignoring transition times,
and from what this process last applied (the watch event of its own write may still be on
its way): a converged agent or pool costs no request.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Any

from llmagents.api.pool_status import ProviderPoolStatus
from llmagents.api.status import OperatorAgentStatus, status_apply_body
from llmagents.operator.cluster_api import Api
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.ownership import own_conditions, status_fingerprint
from llmagents.operator.phase import Verdict, conditions

Status = OperatorAgentStatus | ProviderPoolStatus


def agent_status(
    agent: AgentObject, pool: PoolObject | None, verdict: Verdict, now: datetime
) -> tuple[OperatorAgentStatus, OperatorAgentStatus]:
    """(desired, current): the operator's half of the agent's status as ``verdict`` wants
    it, and the operator's share of the live one."""
    live = agent.status
    strategy = None
    if agent.spec is not None and agent.spec.strategy is not None:
        strategy = agent.spec.strategy.value
    elif pool is not None and pool.spec is not None:
        strategy = pool.spec.strategy.value
    desired = OperatorAgentStatus(
        phase=verdict.phase,
        conditions=conditions(
            verdict.conditions, live.conditions, generation=agent.generation, now=now
        ),
        observed_generation=agent.generation,
        strategy=strategy,
    )
    current = OperatorAgentStatus(
        phase=live.phase,
        conditions=own_conditions(live.conditions, agent.managed_fields),
        observed_generation=live.observed_generation,
        strategy=live.strategy,
    )
    return desired, current


class StatusWrites:
    """Applies statuses by server-side apply, remembering the last one written per object."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._written: dict[Hashable, Any] = {}

    async def write(
        self, kind: str, key: tuple[str, str], desired: Status, current: Status
    ) -> bool:
        """Apply ``desired`` unless live or last written already says the same; True if
        it was applied."""
        fingerprint = status_fingerprint(desired)
        if fingerprint == status_fingerprint(current) or self._written.get((kind, key)) == (
            fingerprint
        ):
            return False
        body = status_apply_body(kind=kind, name=key[1], namespace=key[0], status=desired)
        await self.api.apply(body, subresource="status")
        self._written[(kind, key)] = fingerprint
        return True

    def forget(self, kind: str, key: tuple[str, str]) -> None:
        """The object is gone (or its status must be compared afresh)."""
        self._written.pop((kind, key), None)
