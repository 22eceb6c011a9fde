"""Run the real ``helm`` against the chart: find the binary, render, parse.

``helm`` is built from the pinned Go module by ``hack/build-k8s.sh`` into the control
plane's bin directory. Found, in order: ``$LLMAGENTS_HELM``, ``$LLMAGENTS_K8S_BIN/helm``,
the default bin directory of that script, ``helm`` on PATH. Tests that need it skip when it
is missing, except under CI=true, where that fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "llmagents"
RELEASE = "ops"
NAMESPACE = "llmagents-system"
MONITORING_API = "monitoring.coreos.com/v1"


def _kubernetes_version() -> str:
    """The pinned Kubernetes version of hack/k8s (what the local control plane runs)."""
    go_mod = (REPO / "hack" / "k8s" / "go.mod").read_text()
    found = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", go_mod, re.MULTILINE)
    assert found, "hack/k8s/go.mod pins no k8s.io/kubernetes"
    return found.group(1)


KUBE_VERSION = _kubernetes_version()
"""Passed to ``helm template/lint`` as ``--kube-version``: a helm built from source without
release ldflags assumes Kubernetes 1.20, below the chart's kubeVersion."""


def _default_bin_dir() -> Path:
    # The same path hack/build-k8s.sh builds into.
    cache = Path(os.environ.get("LLMAGENTS_CACHE", Path.home() / ".cache" / "llmagents"))
    return cache / f"k8s-{KUBE_VERSION}" / "bin"


def find_helm() -> str | None:
    candidates = [os.environ.get("LLMAGENTS_HELM")]
    if os.environ.get("LLMAGENTS_K8S_BIN"):
        candidates.append(str(Path(os.environ["LLMAGENTS_K8S_BIN"]) / "helm"))
    candidates.append(str(_default_bin_dir() / "helm"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("helm")


def require_helm() -> str:
    helm = find_helm()
    if helm is None:
        reason = "helm is not built (make k8s-bins builds it with the control plane)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the chart tests", pytrace=False)
        pytest.skip(reason)
    return helm


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def set_args(values: dict[str, Any]) -> list[str]:
    """``--set-json`` arguments for dotted keys, so that types survive."""
    return [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]


def template(
    helm: str,
    values: dict[str, Any] | None = None,
    *,
    extra: Sequence[str] = (),
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart with the monitoring API declared available."""
    return run_helm(
        helm, "template", release, str(CHART), "--namespace", namespace,
        "--kube-version", KUBE_VERSION, "--api-versions", MONITORING_API, *set_args(values or {}), *extra, check=check,
    )  # fmt: skip


def render(helm: str, values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The rendered manifests, parsed (empty documents dropped)."""
    out = template(helm, values, **kwargs).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def is_test_hook(doc: dict[str, Any]) -> bool:
    """Whether ``doc`` is one of ``helm test``'s objects, which exist only while it runs."""
    return ((doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook") == "test"


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The release's objects of ``kind``: ``helm test``'s hooks are not among them."""
    return [d for d in docs if d["kind"] == kind and not is_test_hook(d)]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": {
        "metrics.serviceMonitor.enabled": True,
        "metrics.serviceMonitor.labels": {"release": "prometheus"},
        "metrics.prometheusRule.enabled": True,
        "metrics.prometheusRule.excludeRules": ["LLMAgentHighFallbackRate"],
        "metrics.prometheusRule.alertLabels": {"team": "ml-platform"},
        "metrics.grafanaDashboard.enabled": True,
        "metrics.grafanaDashboard.annotations": {"grafana_folder": "LLM"},
    },
    "high-availability": {
        "operator.replicas": 2,
        "operator.leaderElection.leaseSeconds": 15,
        "operator.leaderElection.renewSeconds": 5,
        "image.digest": "sha256:" + "0" * 64,
        "runner.image": "registry.example/llmagents-runner:1.2.3",
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount.annotations": {"iam.example/role": "llmagents"},
        "operator.podAnnotations": {"example/scrape": "false"},
        "operator.nodeSelector": {"kubernetes.io/os": "linux"},
        "operator.tolerations": [
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "operator.extraEnv": [{"name": "LLMAGENTS_EXTRA", "value": "1"}],
        "operator.logFormat": "plain",
        "operator.watchNamespaces": ["team-a", "team-b"],
    },
    "minimal": {
        "crds.enabled": False,
        "operator.leaderElection.enabled": False,
        "serviceAccount.create": False,
        "serviceAccount.name": "default",
        "metrics.enabled": False,
        "metrics.serviceMonitor.enabled": True,
        "tests.enabled": False,
    },
}
"""Values the chart is rendered, linted and dry-run with (the cluster tests reuse them)."""
