"""Which part of a live status is the operator's, and when its own part needs no write.

Two writers share ``LLMAgent.status``, each by server-side apply under its own field
manager; they even share one list, ``conditions``, merged by ``type``: the operator's
(Ready, PoolResolved, ProvidersHealthy, BudgetAvailable, PriceUnknown) beside the
runner's (CheckpointTooLarge, BackgroundTaskFailed...). The operator decides whether to
write by comparing what it would apply with what its last apply left. Comparing with the
whole list would find the runner's conditions "extra" on every agent that has one; a
process that remembers its last write hides that, a restarted one does not, and would
write once to every such agent. So the comparison takes, of the live conditions, those
the API server records as applied by the operator's field manager (``managedFields``):
exactly the ones its next apply would keep or remove.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmagents.api.pool_status import ProviderPoolStatus
from llmagents.api.status import OPERATOR_FIELD_MANAGER, Condition, OperatorAgentStatus


def applied_conditions(
    managed_fields: Sequence[Mapping[str, Any]] | None, manager: str
) -> frozenset[str] | None:
    """The types of the status conditions ``manager`` holds by server-side apply, as the
    object's ``managedFields`` record them; None when the object carries no managedFields
    (then whose each condition is cannot be told)."""
    if managed_fields is None:
        return None
    types: set[str] = set()
    for entry in managed_fields:
        if (entry.get("manager"), entry.get("operation"), entry.get("subresource")) != (
            manager, "Apply", "status"
        ):  # fmt: skip
            continue
        items = ((entry.get("fieldsV1") or {}).get("f:status") or {}).get("f:conditions") or {}
        for item in items:
            # An entry of a list merged by key is recorded as k:{"type":"Ready"}.
            if not item.startswith("k:"):
                continue
            try:
                kind = json.loads(item[2:]).get("type")
            except (ValueError, AttributeError):
                continue
            if isinstance(kind, str):
                types.add(kind)
    return frozenset(types)


def status_applies(
    managed_fields: Sequence[Mapping[str, Any]] | None, manager: str = OPERATOR_FIELD_MANAGER
) -> list[dict[str, Any]] | None:
    """Of ``managedFields``, what ``applied_conditions`` reads for ``manager``: its status
    applies, each cut down to the keys of its conditions. The same answer from a few
    hundred bytes instead of every writer's whole field tree (for an agent, about two
    thirds of what its parsed object holds), which is what the operator keeps per object."""
    if managed_fields is None:
        return None
    kept: list[dict[str, Any]] = []
    for entry in managed_fields:
        if (entry.get("manager"), entry.get("operation"), entry.get("subresource")) != (
            manager, "Apply", "status"
        ):  # fmt: skip
            continue
        items = ((entry.get("fieldsV1") or {}).get("f:status") or {}).get("f:conditions") or {}
        kept.append({
            "manager": manager, "operation": "Apply", "subresource": "status",
            "fieldsV1": {"f:status": {"f:conditions": dict.fromkeys(items)}},
        })  # fmt: skip
    return kept


def own_conditions(
    conditions: list[Condition] | None,
    managed_fields: Sequence[Mapping[str, Any]] | None,
    manager: str = OPERATOR_FIELD_MANAGER,
) -> list[Condition] | None:
    """Of the live ``conditions``, those ``manager``'s own apply set; all of them when the
    object does not say who wrote what."""
    types = applied_conditions(managed_fields, manager)
    if types is None or conditions is None:
        return conditions
    return [c for c in conditions if c.type in types]


def status_fingerprint(status: OperatorAgentStatus | ProviderPoolStatus) -> Any:
    """What of a status a write would change: all of it but the transition times, which
    follow from the rest, and the order of the conditions, which in a list several writers
    share is the API server's merge order, not the writer's."""
    wire = status.to_wire()
    listed = wire.get("conditions")
    if listed is not None:
        for condition in listed:
            condition.pop("lastTransitionTime", None)
        listed.sort(key=lambda c: c["type"])
    return wire
