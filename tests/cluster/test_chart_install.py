"""The Helm chart on the real control plane: every values set passes a server-side dry run,
and an installed operator reconciles an agent with nothing but the chart's RBAC.

The release's operator pod runs as a local process through a process kubelet, with the
ServiceAccount token the chart's RBAC applies to; the agent's runner pod runs the same way,
against a fake provider on loopback. CRDs are cluster-wide and shared by every test of the
control plane, so the install leaves them to ``install_crds`` (``crds.enabled=false``); the
dry runs cover the chart's CRD templates.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_crds import install_crds

from llmagents.testing.fake_providers import FakeOpenAI, ThreadedFake
from tooling._components import free_port
from tooling.cluster import ClusterInfo, Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

# The chart helpers (helm lookup, values sets) live with the chart's unit tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "chart"))
from helm_tool import (
    CHART,
    VALUE_SETS,
    is_test_hook,
    render,
    require_helm,
    run_helm,
    set_args,
)

pytestmark = pytest.mark.cluster

RELEASE = "ops"
API_KEY = "sk-chart-test-0123456789"


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def _dry_run(kubectl: Kubectl, docs: list[dict[str, Any]]) -> str:
    """Server-side dry run of ``docs``; returns kubectl's stderr (the API's warnings)."""
    result = kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server",
        "--field-manager=chart-test", "-f", "-",
        input=yaml.safe_dump_all(docs),
    )  # fmt: skip
    return result.stderr


def _served(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The local API server has no prometheus-operator CRDs; those objects are checked by
    # value in tests/unit/chart (and their rules by promtool in tests/unit/alerts).
    return [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_values_set_passes_a_server_side_dry_run_under_restricted_pod_security(
    helm: str, kubectl: Kubectl, namespace: str, name: str
):
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    values = dict(VALUE_SETS[name])
    if values.get("operator.watchNamespaces"):  # Roles go there: namespaces that exist
        values["operator.watchNamespaces"] = [namespace]
    docs = _served(render(helm, values, namespace=namespace))
    assert {"Deployment", "Role" if name == "high-availability" else "ClusterRole"} <= {
        d["kind"] for d in docs
    }
    # `helm test`'s pod runs as a ServiceAccount of its own, a hook created just before it:
    # the pod is admitted (dry run or not) only once that account exists.
    accounts = [d for d in docs if d["kind"] == "ServiceAccount" and is_test_hook(d)]
    if accounts:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(accounts))
    warnings = _dry_run(kubectl, docs)
    assert "Warning" not in warnings, warnings


def test_the_pod_security_check_sees_a_privileged_operator(
    helm: str, kubectl: Kubectl, namespace: str
):
    # Guards the test above: a container allowed to escalate privileges makes the API warn.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    values = {"operator.securityContext.allowPrivilegeEscalation": True}
    docs = [d for d in render(helm, values, namespace=namespace) if d["kind"] == "Deployment"]
    assert "would violate PodSecurity" in _dry_run(kubectl, docs)


@pytest.fixture
def chart_kubelet(cluster: ClusterInfo, namespace: str) -> Iterator[ProcessKubelet]:
    """``process_kubelet`` with its state outside /tmp.

    The chart mounts an emptyDir at /tmp, and the process kubelet rewrites every path under
    a pod's mount paths in its environment, the kubeconfig path it sets itself included; a
    state directory under /tmp (pytest's tmp_path) would send the operator a kubeconfig path
    that does not exist.
    """
    state = Path(tempfile.mkdtemp(prefix="llmagents-chart-kubelet-", dir="/var/tmp"))
    kubelet = ProcessKubelet(
        cluster.kubeconfig, namespace=namespace, state_dir=state,
        backoff_initial=0.5, backoff_max=5.0, max_stop_grace=10.0,
    )  # fmt: skip
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def fake_provider() -> Iterator[ThreadedFake]:
    fake = FakeOpenAI(api_key=API_KEY).start_in_thread()
    yield fake
    fake.stop()


def _example(namespace: str, base_url: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
         "stringData": {"openai": API_KEY}},
        {"apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
         "metadata": {"name": "pool"},
         "spec": {"providers": [{
             "name": "fake", "type": "openai", "model": "gpt-4o-mini", "baseURL": base_url,
             "secretRef": {"name": "keys", "key": "openai"},
             "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}}]}},
        {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
         "metadata": {"name": "writer"},
         "spec": {"poolRef": {"name": "pool"}, "checkpointInterval": "5s",
                  "work": {"tasks": [{"name": "hello", "prompt": "Say hello."},
                                     {"name": "bye", "prompt": "Say goodbye."}]}}},
    ]  # fmt: skip


def _get(url: str) -> dict[str, Any] | str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = response.read().decode()
    except OSError:
        return None
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


def _operator_log(kubelet: ProcessKubelet, namespace: str) -> str:
    logs = [
        s.log_path.read_text()
        for s in kubelet.statuses(namespace)
        if s.container == "operator" and s.log_path.exists()
    ]
    return "\n".join(logs)


def test_helm_install_runs_an_operator_that_reconciles_an_agent_with_only_the_chart_s_rbac(
    helm: str,
    cluster: ClusterInfo,
    kubectl: Kubectl,
    namespace: str,
    chart_kubelet: ProcessKubelet,
    fake_provider: ThreadedFake,
):
    port = free_port()
    values = {
        "crds.enabled": False,
        "operator.watchNamespaces": [namespace],
        # Pods of the shared test host share its network: a port of its own, on loopback.
        "operator.port": port,
        "operator.bindAddress": "127.0.0.1",
        "operator.logFormat": "plain",
        "operator.leaderElection.renewSeconds": 2,
    }
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig)]
    # Only pods that meet the restricted Pod Security Standard are admitted here: the
    # operator's, and the runner's it creates.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    install = run_helm(
        helm, "install", RELEASE, str(CHART), "--namespace", namespace, *set_args(values),
        "--wait", "--timeout", "120s", *kubeconfig,
    )  # fmt: skip
    try:
        notes = install.stdout.split("NOTES:", 1)[1].strip()
        assert notes.startswith("WARNING: crds.enabled=false")
        assert "kubectl get llmagents" in notes

        base = f"http://127.0.0.1:{port}"

        def operator_log() -> str:
            return _operator_log(chart_kubelet, namespace)[-4000:]

        eventually(
            lambda: (r := _get(f"{base}/readyz")) and r["ready"] and r["leading"],
            timeout=90, what="the installed operator to lead and be ready", details=operator_log,
        )  # fmt: skip
        lease = kubectl.json("get", "lease", "llmagents-operator")
        assert lease["spec"]["holderIdentity"]
        pods = kubectl.json("get", "pods", "-l", "app.kubernetes.io/component=operator")
        assert len(pods["items"]) == 1  # admitted under the restricted standard
        # watchNamespaces: rights in this namespace only, nothing cluster-wide.
        assert kubectl("get", "clusterrole", f"{RELEASE}-llmagents", check=False).returncode != 0
        assert kubectl("get", "clusterrolebinding", f"{RELEASE}-llmagents",
                       check=False).returncode != 0  # fmt: skip
        assert kubectl("get", "role", f"{RELEASE}-llmagents", check=False).returncode == 0

        kubectl.apply(yaml.safe_dump_all(_example(namespace, fake_provider.base_url)))
        for kind, name in [
            ("serviceaccount", "writer-runner"), ("role", "writer-runner"),
            ("rolebinding", "writer-runner"), ("configmap", "writer-config"),
            ("configmap", "writer-checkpoint"), ("service", "writer-metrics"),
            ("deployment", "writer"),
        ]:  # fmt: skip
            eventually(
                lambda kind=kind, name=name: kubectl(
                    "get", kind, name, check=False
                ).returncode == 0,
                timeout=60, what=f"the operator to create {kind} {name}", details=operator_log,
            )  # fmt: skip

        def phase() -> str | None:
            status = kubectl.json("get", "llmagent", "writer").get("status") or {}
            return status.get("phase") if status.get("phase") == "Completed" else None

        eventually(
            phase, timeout=120,
            what="the runner pod to work through the tasks and the agent to complete",
            details=lambda: f"{kubectl('get', 'llmagent', 'writer', '-o', 'yaml').stdout}\n"
            f"{operator_log()}",
        )  # fmt: skip
        status = kubectl.json("get", "llmagent", "writer")["status"]
        assert status["tasks"]["done"] == 2  # the runner's pod was admitted and did the work
        assert fake_provider.stats()["requests"] >= 2

        metrics = _get(f"{base}/metrics")
        assert isinstance(metrics, str) and "llmagents_operator_api_writes_total" in metrics
        log = _operator_log(chart_kubelet, namespace)
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
    finally:
        run_helm(helm, "uninstall", RELEASE, "--namespace", namespace, *kubeconfig, check=False)
    assert kubectl("get", "clusterrole", f"{RELEASE}-llmagents", check=False).returncode != 0
