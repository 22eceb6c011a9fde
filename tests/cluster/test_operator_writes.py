"""A converged fleet costs the API server no write, before and after an operator restart.

The runners write their own conditions (``CheckpointTooLarge``, ``BackgroundTaskFailed``...)
into the same ``status.conditions`` list as the operator, each under its own field manager.
A restarted operator knows nothing of what it wrote before; it must read its own share of
the live status (what its field manager owns) and find nothing to write. Writes are counted
twice: by the operator's own counter and by the API server's request counter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from test_operator import (  # noqa: F401 (fixtures)
    POOL,
    OperatorProcess,
    agent,
    conditions,
    crds,
    deployed,
    get,
    runner_status,
    secret,
    start_operator,
)

from tooling.cluster import Kubectl
from tooling.polling import eventually

pytestmark = pytest.mark.cluster

AGENTS = [f"a{i}" for i in range(6)]
# The kinds only the operator (and here the test, as the runner) writes: no controller of
# the cluster touches them, so the API server's counters of them are the operator's writes.
OPERATOR_KINDS = ("llmagents", "providerpools", "serviceaccounts", "roles", "rolebindings",
                  "services")  # fmt: skip
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY")  # not DELETE: other tests' namespaces go away
STAMP = "2026-12-04T10:00:00Z"


def apiserver_writes(kubectl: Kubectl) -> dict[str, float]:
    """Write requests the API server served, by resource (and subresource), of our kinds."""
    out: dict[str, float] = {}
    for line in kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in OPERATOR_KINDS:
            key = "/".join(filter(None, (labels["resource"], labels.get("subresource"))))
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


WRITES = r'llmagents_operator_api_writes_total\{kind="([^"]*)",subresource="([^"]*)"\} (\S+)'


def operator_writes_by_kind(op: OperatorProcess) -> dict[str, float]:
    found = re.findall(WRITES, op.metrics())
    return {f"{kind}/{sub}".rstrip("/"): float(n) for kind, sub, n in found if float(n)}


def reconciled(op: OperatorProcess, namespace: str, phase: str) -> set[str]:
    """The agents ``op`` has reconciled into ``phase`` (its phase gauge is set on every
    reconcile, just before the status write it may decide on)."""
    agents = set()
    for labels, value in re.findall(r"^llmagents_agent_phase\{(.*)\} (\S+)$", op.metrics(), re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if float(value) and (found["namespace"], found["phase"]) == (namespace, phase):
            agents.add(found["agent"])
    return agents


def phases(kubectl: Kubectl) -> str:
    """Each agent's phase and conditions, for a failure's message."""
    items = kubectl.json("get", "llmagents")["items"]
    return "\n".join(
        f"{i['metadata']['name']}: {(i.get('status') or {}).get('phase')} "
        f"{[(c['type'], c['reason']) for c in (i.get('status') or {}).get('conditions') or []]}"
        for i in items
    )


def runner_report(name: str) -> dict[str, Any]:
    """What a runner writes: its providers, and a condition of its own (two for one agent,
    none for another)."""
    own = [
        {"type": "CheckpointTooLarge", "status": "True", "reason": "CheckpointTooLarge",
         "message": "custom state of 2 MiB; saved without custom state",
         "lastTransitionTime": STAMP},
        {"type": "BackgroundTaskFailed", "status": "True", "reason": "BackgroundTaskFailed",
         "message": "the status writer failed 1 time(s) and was restarted",
         "lastTransitionTime": STAMP},
    ]  # fmt: skip
    count = {"a0": 0, "a1": 2}.get(name, 1)
    report: dict[str, Any] = {
        "runnerPhase": "Running",
        "startedAt": STAMP,
        "providers": [
            {"name": "claude", "healthy": True, "breakerState": "closed", "lastSuccess": STAMP},
            {"name": "local", "healthy": True, "breakerState": "closed"},
        ],
        "tasks": {"done": 0, "total": 2},
    }
    if count:
        report["conditions"] = own[:count]
    return report


def test_a_restarted_operator_writes_nothing_to_a_converged_fleet_whose_runners_set_conditions(
    kubectl: Kubectl,
    namespace: str,
    start_operator: Callable[..., OperatorProcess],  # noqa: F811
) -> None:
    first = start_operator("--no-leader-election")
    kubectl.apply(POOL)
    for name in AGENTS:
        kubectl.apply(agent(name))
    # Pending first (no Secret): the operator's own conditions then change in number, as
    # they do in life, so their order in the live list is the API server's merge, not ours.
    for name in AGENTS:
        eventually(
            lambda n=name: conditions(kubectl, n).get("PoolResolved"), what=f"{name} Pending"
        )
    secret(kubectl)
    for name in AGENTS:
        deployed(kubectl, name)
        runner_status(kubectl, name, runner_report(name))
    eventually(lambda: reconciled(first, namespace, "Running") == set(AGENTS), what="all Running",
               details=lambda: phases(kubectl))  # fmt: skip

    def converged() -> bool:
        pool = (get(kubectl, "providerpool", "pool") or {}).get("status") or {}
        reporting = [p.get("agents") for p in pool.get("providers") or []]
        if pool.get("healthy") != "2/2" or reporting != [len(AGENTS)] * 2:
            return False
        for name in AGENTS:
            status = get(kubectl, "llmagent", name)["status"]
            types = {c["type"] for c in status.get("conditions") or []}
            if status.get("phase") != "Running" or "PriceUnknown" not in types:
                return False
            if name == "a1" and not {"CheckpointTooLarge", "BackgroundTaskFailed"} <= types:
                return False
        return True

    eventually(converged, what="the fleet converged")
    first.stop()
    before = apiserver_writes(kubectl)

    second = start_operator("--no-leader-election")
    eventually(lambda: reconciled(second, namespace, "Running") == set(AGENTS),
               what="the restarted operator reconciled every agent")  # fmt: skip
    # The absence of writes can only be observed over a window: the pool is folded a
    # second after its agents, and each status write follows its agent's gauge.
    time.sleep(3)
    after = apiserver_writes(kubectl)
    served = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k)}
    assert (operator_writes_by_kind(second), served) == ({}, {})
    # The runners' conditions are still there, beside the operator's.
    assert {"CheckpointTooLarge", "BackgroundTaskFailed", "Ready"} <= set(conditions(kubectl, "a1"))
