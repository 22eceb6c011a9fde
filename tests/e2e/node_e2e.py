"""Helpers of the real-node tests: kubectl and helm, fake providers pods can reach, polling."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from llmagents.demo import quickstart_docs
from llmagents.testing._nodeconfig import GATEWAY
from llmagents.testing.cluster import REPO_ROOT
from llmagents.testing.fake_providers import FakeAnthropic, FakeOpenAI, FaultPlan
from llmagents.testing.fake_providers.threaded import ThreadedFake

T = TypeVar("T")
CHART = REPO_ROOT / "charts" / "llmagents"
QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
RELEASE = "llmagents"
OPERATOR_NS = "llmagents-system"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def eventually(
    probe: Callable[[], T | None], *, timeout: float, what: str,
    details: Callable[[], str] | None = None,
) -> T:  # fmt: skip
    """Poll ``probe`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(1.0)


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

    def quickstart(self, name: str = "quickstart") -> list[dict[str, Any]]:
        """examples/quickstart.yaml with its base URLs at these fakes. Another ``name``
        renames the agent and gives it a pool of its own: agents of one pool share what
        they learn of its providers (a provider open for the pool starts open for them)."""
        urls = {"anthropic": self.anthropic.url, "openai": self.openai.url}
        docs = quickstart_docs(QUICKSTART.read_text(), fakes=urls, real={})
        pool = next(d for d in docs if d["kind"] == "ProviderPool")
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
