"""Names, labels and owner references shared by every object the operator builds."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmagents.api.status import API_VERSION
from llmagents.operator.objects import AgentObject
from llmagents.operator.settings import LABEL_AGENT, LABEL_MANAGED_BY, MANAGED_BY


def content_hash(document: Any) -> str:
    """A short, stable hash of a JSON-able document."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def labels(agent: AgentObject) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "llmagents-runner",
        "app.kubernetes.io/instance": agent.name,
        "app.kubernetes.io/part-of": "llmagents",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_AGENT: agent.name,
    }


def selector(agent: AgentObject) -> dict[str, str]:
    return {"app.kubernetes.io/name": "llmagents-runner", LABEL_AGENT: agent.name}


def owner_reference(agent: AgentObject) -> dict[str, Any]:
    """Makes the agent the controller of a child, so deleting the agent deletes it."""
    return {
        "apiVersion": API_VERSION,
        "kind": "LLMAgent",
        "name": agent.name,
        "uid": agent.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(agent: AgentObject, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": agent.namespace,
        "labels": labels(agent),
        "ownerReferences": [owner_reference(agent)],
    }
