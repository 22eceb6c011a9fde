"""Helpers of the real-node tests: kubectl and helm, fake providers pods can reach, polling."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from llmagents.runner.configmap_store import ANNOTATION_EPOCH, KEY_GZIP, KEY_PLAIN
from llmagents.testing.fake_providers import FakeAnthropic, FakeOpenAI, FaultPlan
from llmagents.testing.fake_providers.threaded import ThreadedFake
from tooling._nodeconfig import GATEWAY
from tooling.cluster import REPO_ROOT
from tooling.demo import quickstart_docs
from tooling.node import CGROUP_FS

T = TypeVar("T")
CHART = REPO_ROOT / "charts" / "llmagents"
QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
RELEASE = "llmagents"
OPERATOR_NS = "llmagents-system"
AGENTS_NS = "agents"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@dataclass
class Kube:
    """kubectl and helm bound to the e2e cluster's admin kubeconfig."""

    kubectl_exe: str
    kubeconfig: Path
    helm_exe: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_exe, "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self.kubectl(*args, input=input)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.helm_exe), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip

    def restricted_namespace(self, name: str) -> None:
        """A namespace whose pods must meet the restricted Pod Security Standard."""
        manifest = {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": RESTRICTED}}  # fmt: skip
        self.ok("apply", "-f", "-", input=json.dumps(manifest))

    def agent(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.kubectl("-n", namespace, "get", "llmagent", name, "-o", "json")
        return json.loads(found.stdout) if found.returncode == 0 else {}

    def pod(self, namespace: str, selector: str) -> dict[str, Any] | None:
        pods = self.json("-n", namespace, "get", "pods", "-l", selector)["items"]
        running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return running[0] if len(running) == 1 else None

    def diagnostics(self, namespace: str | None) -> str:
        scope = ["-n", namespace] if namespace else ["-A"]
        parts = [
            self.kubectl("get", "nodes,pods,llmagents,providerpools", *scope, "-o", "wide").stdout,
            self.kubectl("get", "events", *scope, "--sort-by=.lastTimestamp").stdout[-4000:],
            self.kubectl("-n", OPERATOR_NS, "logs", f"deploy/{RELEASE}", "--tail=60").stdout,
        ]
        return "\n".join(parts)


@dataclass
class Chart:
    """The chart's release in OPERATOR_NS, installed with ``image`` for every pod."""

    kube: Kube
    image: str

    def installed(self) -> bool:
        status = self.kube.helm("status", RELEASE, "--namespace", OPERATOR_NS, "-o", "json")
        return status.returncode == 0 and json.loads(status.stdout)["info"]["status"] == "deployed"

    def ensure_installed(self) -> None:
        """``helm install`` unless deployed, waiting for the operator to be Ready."""
        if self.installed():
            return
        repository, tag = self.image.rsplit(":", 1)
        result = self.kube.helm(
            "install", RELEASE, str(CHART), "--namespace", OPERATOR_NS,
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never", "--set", "operator.logFormat=plain",
            "--wait", "--timeout", "300s",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr + self.kube.diagnostics(OPERATOR_NS)


@dataclass
class Fakes:
    """Fake Anthropic (in an outage) and OpenAI servers on the node's bridge address."""

    anthropic: ThreadedFake
    openai: ThreadedFake

    @classmethod
    def start(cls) -> Fakes:
        anthropic = FakeAnthropic(api_key=None, host=GATEWAY, faults=FaultPlan(outage=True))
        openai = FakeOpenAI(api_key=None, host=GATEWAY)
        return cls(anthropic.start_in_thread(), openai.start_in_thread())

    def stop(self) -> None:
        self.anthropic.stop()
        self.openai.stop()

    def requests(self) -> dict[str, int]:
        """Requests each fake has answered so far (errors of an outage included)."""
        return {
            "anthropic": self.anthropic.server.core.stats.requests,
            "openai": self.openai.server.core.stats.requests,
        }

    def quickstart(self, name: str = "quickstart", *, local: bool = True) -> list[dict[str, Any]]:
        """examples/quickstart.yaml with its base URLs at these fakes. Another ``name``
        renames the agent and gives it a pool of its own: agents of one pool share what
        they learn of its providers (a provider open for the pool starts open for them).
        ``local=False`` leaves the ONNX provider out, and with it the agent's sidecar."""
        urls = {"anthropic": self.anthropic.url, "openai": self.openai.url}
        docs = quickstart_docs(QUICKSTART.read_text(), fakes=urls, real={})
        pool = next(d for d in docs if d["kind"] == "ProviderPool")
        if not local:
            providers = pool["spec"]["providers"]
            providers[:] = [p for p in providers if p["type"] != "onnx"]
        for provider in pool["spec"]["providers"]:
            if "baseURL" in provider:  # plain http off loopback: the fakes are ours
                provider["allowInsecureBaseURL"] = True
        if name != "quickstart":
            agent = next(d for d in docs if d["kind"] == "LLMAgent")
            pool["metadata"]["name"] = agent["metadata"]["name"] = name
            agent["spec"]["poolRef"]["name"] = name
        return docs


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs)


def statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A pod's container statuses by container name."""
    return {s["name"]: s for s in pod.get("status", {}).get("containerStatuses", [])}


def memory_bytes(container_id: str) -> int:
    """The container's peak memory (cgroup v1 max_usage_in_bytes), 0 once it is gone."""
    cid = container_id.removeprefix("containerd://")
    for path in (CGROUP_FS / "memory").glob(f"llmagents-node-*/kubepods/**/{cid}"):
        try:
            return int((path / "memory.max_usage_in_bytes").read_text())
        except OSError:
            return 0
    return 0


def sample_peaks(pod: dict[str, Any] | None, peaks: dict[str, int]) -> None:
    """Raise ``peaks`` (by container name) to what each of the pod's containers has used."""
    for name, status in statuses(pod or {}).items():
        if status.get("containerID"):
            peaks[name] = max(peaks.get(name, 0), memory_bytes(status["containerID"]))


@dataclass
class QuickstartRun:
    """examples/quickstart.yaml run to completion, as seen while it ran."""

    requests: dict[str, int] = field(default_factory=dict)  # to each fake while it ran
    runner_log: str = ""  # `kubectl logs deploy/quickstart -c runner` while it ran
    onnx_log: str = ""  # the sidecar's, last seen
    peaks: dict[str, int] = field(default_factory=dict)  # peak memory by container
    images: dict[str, str] = field(default_factory=dict)  # image by container
    restarts: dict[str, int] = field(default_factory=dict)  # restart count by container
    terminations: dict[str, Any] = field(default_factory=dict)  # last termination, if any

    def sample(self, pod: dict[str, Any] | None) -> None:
        if pod is None:
            return
        sample_peaks(pod, self.peaks)
        self.images.update({c["name"]: c["image"] for c in pod["spec"]["containers"]})
        for name, status in statuses(pod).items():
            self.restarts[name] = max(self.restarts.get(name, 0), status.get("restartCount", 0))
            if ended := status.get("lastState", {}).get("terminated"):
                self.terminations[name] = ended


@dataclass
class GatewayRun:
    """The gateway-mode agent once its own container has had its three answers."""

    agent_log: str
    status: dict[str, Any]  # the LLMAgent's status once its spend was reported


def checkpoint(kube: Kube, namespace: str, agent: str) -> tuple[str, int, dict[str, Any]]:
    """The agent's checkpoint as its ConfigMap holds it: (resourceVersion, epoch, document)."""
    cm = kube.json("-n", namespace, "get", "configmap", f"{agent}-checkpoint")
    meta = cm["metadata"]
    epoch = int((meta.get("annotations") or {}).get(ANNOTATION_EPOCH, "0"))
    if KEY_GZIP in (cm.get("binaryData") or {}):
        doc = json.loads(gzip.decompress(base64.b64decode(cm["binaryData"][KEY_GZIP])))
    else:
        doc = json.loads((cm.get("data") or {}).get(KEY_PLAIN, "{}"))
    return meta["resourceVersion"], epoch, doc


def spent(doc: dict[str, Any]) -> float:
    """The spend a checkpoint document records (the engine's ledger, all periods)."""
    return float(doc["engine"]["spend"]["total"]["cost"])


def hold_checkpoint(namespace: str, agent: str, name: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy (and its binding) that refuses every write of the agent's
    checkpoint ConfigMap but a new runner's claim (a write that raises the epoch): while it
    holds, the runner's spend between its checkpoints is in its spend journal only."""
    epoch = f"'{ANNOTATION_EPOCH}'"
    new, old = "object.metadata.annotations", "oldObject.metadata.annotations"
    claim = (f"has(object.metadata.annotations) && {epoch} in {new} && "
             f"(!has(oldObject.metadata.annotations) || !({epoch} in {old}) || "
             f"{new}[{epoch}] != {old}[{epoch}])")  # fmt: skip
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                "resources": ["configmaps"],
            }]},
            "validations": [{
                "expression": f"object.metadata.name != '{agent}-checkpoint' || ({claim})",
                "message": f"{name}: only a new runner's claim may write this checkpoint",
                "reason": "Forbidden",
            }],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name, "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }  # fmt: skip
    return [policy, binding]
