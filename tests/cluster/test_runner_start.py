"""The runner process starting against a configuration it cannot use.

A pool that validated when the operator rendered it can stop validating under a newer
runner (a rule added in an upgrade, such as https-or-loopback base URLs). The runner must
then say so in its agent's status and exit, not die with a traceback nobody reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_crds import install_crds

from tooling.cluster import ClusterInfo, Kubectl

pytestmark = pytest.mark.cluster

CONFIG = {
    "agent": {"name": "keeper", "namespace": "", "uid": ""},
    "poolName": "pool",
    "pool": {"providers": [{"name": "vllm", "type": "openai", "model": "m",
                            "baseURL": "http://vllm.internal:8000/v1",  # no opt-in
                            "secretRef": {"name": "keys"}}]},
    "mode": "tasks",
    "tasks": [{"name": "t", "prompt": "p"}],
    "checkpointInterval": "30s",
    "checkpointConfigMap": "keeper-checkpoint",
    "apiKeyEnv": {"vllm": "LLMAGENTS_API_KEY_VLLM"},
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


def test_a_configuration_that_no_longer_validates_is_a_failed_status_not_a_traceback(
    cluster: ClusterInfo, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(json.dumps({
        "apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
        "metadata": {"name": "keeper", "namespace": namespace},
        "spec": {"poolRef": {"name": "pool"}, "work": {"tasks": [{"name": "t", "prompt": "p"}]}},
    }))  # fmt: skip
    uid = kubectl.json("get", "llmagent", "keeper")["metadata"]["uid"]
    config = {**CONFIG, "agent": {"name": "keeper", "namespace": namespace, "uid": uid}}
    kubectl.apply(json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keeper-config"},
        "data": {"runner.yaml": yaml.safe_dump(config)},
    }))  # fmt: skip
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "LLMAGENTS_AGENT": "keeper", "LLMAGENTS_NAMESPACE": namespace,
        "LLMAGENTS_CONFIG_MAP": "keeper-config", "LLMAGENTS_API_KEY_VLLM": "sk-x-0123456789",
    }  # fmt: skip
    llmagents = Path(sys.executable).parent / "llmagents"
    done = subprocess.run(
        [str(llmagents), "runner", "--kubeconfig", str(cluster.kubeconfig)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    status = kubectl.json("get", "llmagent", "keeper").get("status") or {}
    assert status.get("runnerPhase") == "Failed"
    message = status.get("message") or ""
    assert "ConfigMap keeper-config" in message and "allowInsecureBaseURL" in message
    assert "sk-x-0123456789" not in json.dumps(status) + done.stderr
