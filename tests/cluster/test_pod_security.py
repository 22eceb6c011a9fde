"""Agent pods as the operator builds them, under the restricted Pod Security Standard.

The runner e2e and chart tests run real pods in namespaces that enforce the standard; this
one covers every container an agent pod can have at once (runner, ONNX sidecar with a
model volume, the agent's own container), through the API server's own admission.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from llmagents.operator.builders import children
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.settings import OperatorSettings
from tooling.cluster import Kubectl

pytestmark = pytest.mark.cluster


def _pod(namespace: str) -> dict[str, Any]:
    meta = {"namespace": namespace, "uid": "uid", "generation": 1,
            "creationTimestamp": "2030-01-01T00:00:00Z"}  # fmt: skip
    agent = AgentObject.from_body({
        "apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
        "metadata": {"name": "writer", **meta},
        "spec": {"poolRef": {"name": "pool"},
                 "work": {"agent": {"image": "example.test/agent:1"}},
                 "onnx": {"modelVolume": {"claimName": "models"}}},
    })  # fmt: skip
    pool = PoolObject.from_body({
        "apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
        "metadata": {"name": "pool", **meta},
        "spec": {"providers": [
            {"name": "gpt", "type": "openai", "model": "m", "secretRef": {"name": "keys"}},
            {"name": "local", "type": "onnx", "model": "smollm2"}]},
    })  # fmt: skip
    manifests = children(agent, pool, OperatorSettings(image="example.test/llmagents:1"),
                         replicas=1)  # fmt: skip
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "writer-pod", "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}  # fmt: skip


def _create(kubectl: Kubectl, pod: dict[str, Any]) -> Any:
    return kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)


def test_every_container_of_an_agent_pod_is_admitted_under_restricted_pod_security(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("create", "serviceaccount", "writer-runner")
    pod = _pod(namespace)
    assert {c["name"] for c in pod["spec"]["containers"]} == {"runner", "onnx", "agent"}
    admitted = _create(kubectl, pod)
    assert admitted.returncode == 0, admitted.stderr
    # The guard: the same pod with one container allowed to escalate is refused.
    loose = copy.deepcopy(pod)
    loose["spec"]["containers"][2]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = _create(kubectl, loose)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
