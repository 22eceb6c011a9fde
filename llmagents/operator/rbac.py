"""The runner's identity and rights: exactly its own agent's status and its own ConfigMaps.

Every rule names its objects (``resourceNames``), so a runner that is compromised or buggy
cannot read another agent, touch Secrets, or create anything but its own checkpoint and
results ConfigMaps, and Events in its namespace (whose names are generated). ``create`` with ``resourceNames`` works because the runner creates them
by server-side apply, which the API server authorises as ``create`` of the named object; a
plain POST carries no name and matches no rule here.
"""

from __future__ import annotations

from typing import Any

from llmagents.api.runner_config import (
    checkpoint_config_map_name,
    config_map_name,
    results_config_map_names,
)
from llmagents.api.status import GROUP
from llmagents.operator.meta import metadata
from llmagents.operator.objects import AgentObject


def service_account_name(agent: str) -> str:
    return f"{agent}-runner"


def runner_rules(agent: str, pool: str | None = None) -> list[dict[str, Any]]:
    """The runner's rights, named object by named object (its pool's only when named)."""
    rules = [
        {
            # Its own LLMAgent: read the spec (watch needs list with a name field selector).
            "apiGroups": [GROUP],
            "resources": ["llmagents"],
            "resourceNames": [agent],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [GROUP],
            "resources": ["llmagents/status"],
            "resourceNames": [agent],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [config_map_name(agent)],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [checkpoint_config_map_name(agent)],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        },
        {
            # Task results, in shards the runner creates as it fills them.
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": results_config_map_names(agent),
            "verbs": ["get", "create", "patch"],
        },
        {
            # Events on its agent (llmagents.runner.events). Event names are generated, so
            # no resourceNames; the Role confines them to the agent's namespace. list: a
            # restarted runner continues its Events' series (llmagents.events).
            "apiGroups": ["events.k8s.io"],
            "resources": ["events"],
            "verbs": ["create", "patch", "list"],
        },
    ]
    if pool is not None:
        # Its pool's status is the fleet's view of provider health (fleet-wide breaker).
        rules.append(
            {
                "apiGroups": [GROUP],
                "resources": ["providerpools"],
                "resourceNames": [pool],
                "verbs": ["get", "list", "watch"],
            }
        )
    return rules


def service_account(agent: AgentObject) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(agent, service_account_name(agent.name)),
    }


def role(agent: AgentObject) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(agent, service_account_name(agent.name)),
        "rules": runner_rules(agent.name, agent.pool_name),
    }


def role_binding(agent: AgentObject) -> dict[str, Any]:
    name = service_account_name(agent.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(agent, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": agent.namespace}],
    }


_WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]


def operator_rules() -> list[dict[str, Any]]:
    """The operator's own rights (a ClusterRole, or a Role per watched namespace): the Helm
    chart grants exactly these.

    It must hold every right it grants runners (RBAC forbids escalation), reads Secrets
    only to check that referenced keys exist and can be API keys, and keeps its leader
    Lease.
    """
    return [
        {"apiGroups": [GROUP], "resources": ["llmagents", "providerpools"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [GROUP], "resources": ["llmagents/status", "providerpools/status"],
         "verbs": ["get", "patch", "update"]},
        # Owner references with blockOwnerDeletion need this where the admission plugin
        # OwnerReferencesPermissionEnforcement is on.
        {"apiGroups": [GROUP], "resources": ["llmagents/finalizers"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["configmaps", "services", "serviceaccounts"],
         "verbs": _WRITE},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _WRITE},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": _WRITE},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
         "verbs": ["create", "patch", "list"]},
    ]  # fmt: skip


def operator_cluster_role(name: str = "llmagents-operator") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "llmagents"}},
        "rules": operator_rules(),
    }
