"""The image and the chart on a real node: containerd, runc, CNI and a real kubelet.

Run in order (one cluster and node for the session): the chart's operator, the quickstart
falling back to the ONNX sidecar container, a runner killed by the runtime, a gateway-mode
agent with the OpenAI SDK, `helm upgrade` and `helm uninstall`. The agents run in a
namespace that enforces the restricted Pod Security Standard, as does the operator's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from node_e2e import CHART, OPERATOR_NS, RELEASE, Fakes, Kube, dump, eventually

from llmagents.testing.fake_providers import FaultPlan
from llmagents.testing.fake_providers.faults import Latency
from llmagents.testing.node import CGROUP_FS, RealNode

# Pods start on a loaded 2-core machine; each wait below has its own deadline.
pytestmark = pytest.mark.timeout(1800)
AGENTS_NS = "agents"
MEMORY_REPORT = Path(
    os.environ.get("LLMAGENTS_E2E_MEMORY_REPORT", "/tmp/llmagents-e2e-memory.json")
)


@pytest.fixture(scope="module")
def agents_ns(kube: Kube, release: str) -> str:
    kube.restricted_namespace(AGENTS_NS)
    return AGENTS_NS


def _container_pid(node: RealNode, container_id: str) -> int:
    tasks = node.ctr("tasks", "ls").stdout.decode().splitlines()
    cid = container_id.removeprefix("containerd://")
    return int(next(line.split()[1] for line in tasks if line.startswith(cid)))


def _memory_bytes(container_id: str) -> int:
    """The container's peak memory (cgroup v1 max_usage_in_bytes), 0 once it is gone."""
    cid = container_id.removeprefix("containerd://")
    for path in (CGROUP_FS / "memory").glob(f"llmagents-node-*/kubepods/**/{cid}"):
        try:
            return int((path / "memory.max_usage_in_bytes").read_text())
        except OSError:
            return 0
    return 0


def _statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in pod.get("status", {}).get("containerStatuses", [])}


def test_the_operator_runs_from_the_image_non_root_on_a_read_only_root(
    kube: Kube, node: RealNode, release: str
) -> None:
    pod = kube.pod(OPERATOR_NS, "app.kubernetes.io/name=llmagents")
    assert pod is not None
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"], status
    pid = _container_pid(node, status["containerID"])
    uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Uid:"))  # fmt: skip
    assert uids.split()[1:] == ["65532"] * 4
    root = next(line for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                if line.split()[4] == "/")  # fmt: skip
    assert "ro" in root.split()[5].split(","), root
    # Its readiness came through the real probe over the pod network; /readyz says it leads.
    assert kube.json("-n", OPERATOR_NS, "get", "deploy", RELEASE)["status"]["readyReplicas"] == 1


def test_quickstart_falls_back_to_the_onnx_sidecar_container(
    kube: Kube, node: RealNode, fakes: Fakes, agents_ns: str
) -> None:
    # Both hosted providers down: claude, then gpt, then SmolLM2 in the sidecar answers.
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    fakes.openai.set_faults(FaultPlan(outage=True))
    kube.ok("-n", agents_ns, "apply", "-f", "-", input=dump(fakes.quickstart()))

    logs_seen = ""
    peaks: dict[str, int] = {}

    def completed() -> bool:
        nonlocal logs_seen
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=quickstart")
        for name, status in _statuses(pod or {}).items():
            if status.get("containerID"):
                peaks[name] = max(peaks.get(name, 0), _memory_bytes(status["containerID"]))
        if pod is not None and not logs_seen:
            logs = kube.kubectl("-n", agents_ns, "logs", "deploy/quickstart", "-c", "runner")
            logs_seen = logs.stdout if logs.returncode == 0 and "task" in logs.stdout else ""
        return kube.agent(agents_ns, "quickstart").get("status", {}).get("phase") == "Completed"

    eventually(completed, timeout=900, what="quickstart to complete",
               details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    status = kube.agent(agents_ns, "quickstart")["status"]
    assert status["tasks"]["done"] == 3 and status["tasks"]["failed"] == 0
    results = kube.json("-n", agents_ns, "get", "configmap", "quickstart-results-0")["data"]
    answers = [json.loads(v) for v in results.values()]
    assert {a["provider"] for a in answers} == {"local"}, answers
    assert all(a["text"].strip() for a in answers)
    # The runner reached both fakes over the pod network before falling back.
    assert fakes.anthropic.server.core.stats.requests > 0
    assert fakes.openai.server.core.stats.requests > 0
    table = kube.ok("-n", agents_ns, "get", "llmagents")
    assert "quickstart" in table and "Completed" in table
    # The README's troubleshooting: the runner's log through the API server and kubelet.
    assert logs_seen, "kubectl logs deploy/quickstart -c runner showed no task lines"
    operator = kube.pod(OPERATOR_NS, "app.kubernetes.io/name=llmagents")
    assert operator is not None
    peaks["operator"] = _memory_bytes(operator["status"]["containerStatuses"][0]["containerID"])
    MEMORY_REPORT.write_text(json.dumps({"quickstart": peaks}, indent=2))
    print(f"peak memory (bytes) of the quickstart's containers: {peaks}")


def test_a_runner_killed_by_the_runtime_resumes_from_its_checkpoint(
    kube: Kube, node: RealNode, fakes: Fakes, agents_ns: str
) -> None:
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    # Slow answers, so that the kill lands mid-list whatever the machine's load.
    fakes.openai.set_faults(FaultPlan(latency=Latency(ms=4000)))
    before = fakes.openai.server.core.stats.requests
    docs = fakes.quickstart("resumer")
    agent = next(d for d in docs if d["kind"] == "LLMAgent")
    agent["spec"]["checkpointInterval"] = "5s"
    agent["spec"]["work"]["tasks"] = [
        {"name": f"t{i}", "prompt": f"Task {i}: one word.", "complexity": "medium"}
        for i in range(8)
    ]
    kube.ok("-n", agents_ns, "apply", "-f", "-", input=dump(docs))

    def two_done() -> dict[str, Any] | None:
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=resumer")
        status = kube.agent(agents_ns, "resumer").get("status", {})
        assert status.get("phase") != "Completed", "finished before the runner could be killed"
        return pod if (status.get("tasks") or {}).get("done", 0) >= 2 and pod else None

    pod = eventually(two_done, timeout=600, what="two tasks done",
                     details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    runner = _statuses(pod)["runner"]
    node.kill_container(runner["containerID"])

    def restarted() -> bool:
        p = kube.pod(agents_ns, "app.kubernetes.io/instance=resumer")
        s = _statuses(p or {}).get("runner", {})
        return s.get("restartCount", 0) >= 1 and bool(s.get("ready"))

    eventually(restarted, timeout=300, what="the kubelet to restart the runner")
    last = _statuses(kube.pod(agents_ns, "app.kubernetes.io/instance=resumer") or {})["runner"]
    assert last["lastState"]["terminated"]["exitCode"] == 137  # SIGKILL, not a clean exit
    eventually(
        lambda: kube.agent(agents_ns, "resumer").get("status", {}).get("phase") == "Completed",
        timeout=600, what="resumer to complete", details=lambda: kube.diagnostics(agents_ns),
    )  # fmt: skip
    status = kube.agent(agents_ns, "resumer")["status"]
    assert status["tasks"] == {**status["tasks"], "done": 8, "failed": 0}
    results = kube.json("-n", agents_ns, "get", "configmap", "resumer-results-0")["data"]
    assert sorted(results) == [f"t{i}" for i in range(8)]
    # Nothing done twice: at most the call in flight when the runner died is repeated.
    calls = fakes.openai.server.core.stats.requests - before
    assert 8 <= calls <= 9, calls
    spent = sum(json.loads(v)["costUSD"] for v in results.values())
    assert status["cost"]["totalUSD"] == pytest.approx(spent, rel=1e-6, abs=1e-9)


def test_a_gateway_agent_with_the_openai_sdk_gets_answers_with_fallback(
    kube: Kube, node: RealNode, fakes: Fakes, agents_ns: str
) -> None:
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    fakes.openai.set_faults(FaultPlan())
    docs = fakes.quickstart("gateway")
    agent = next(d for d in docs if d["kind"] == "LLMAgent")
    agent["spec"]["work"] = {"agent": {"image": os.environ["LLMAGENTS_E2E_AGENT_IMAGE"]}}
    kube.ok("-n", agents_ns, "apply", "-f", "-", input=dump(docs))

    def answered() -> str:
        logs = kube.kubectl("-n", agents_ns, "logs", "deploy/gateway", "-c", "agent")
        return logs.stdout if "all 3 answered" in logs.stdout else ""

    out = eventually(answered, timeout=600, what="the agent's three answers",
                     details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    assert out.count("from gpt") == 3, out  # claude is down: the engine fell back
    # The runner reports spend with its next status write, not with each answer.
    eventually(
        lambda: kube.agent(agents_ns, "gateway").get("status", {}).get("cost", {}).get("totalUSD"),
        timeout=120, what="the gateway agent's spend in its status",
    )  # fmt: skip


def test_helm_upgrade_rolls_everything_without_losing_spend_and_uninstall_keeps_crds(
    kube: Kube, node: RealNode, image: str, agents_ns: str
) -> None:
    spent = kube.agent(agents_ns, "gateway")["status"]["cost"]["totalUSD"]
    repository, tag = image.rsplit(":", 1)
    new = f"{repository}:{tag}-upgraded"
    node.load_images([image])  # already there; the new tag is an alias of the same layers
    tagged = node.ctr("images", "tag", "--force", image, new)
    assert tagged.returncode == 0, tagged.stderr
    upgraded = kube.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", OPERATOR_NS, "--reuse-values",
        "--set", f"image.tag={tag}-upgraded", "--wait", "--timeout", "300s",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr

    def rolled() -> bool:
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=gateway")
        if pod is None:
            return False
        images = {c["image"] for c in pod["spec"]["containers"] if c["name"] == "runner"}
        return images == {new} and all(s.get("ready") for s in _statuses(pod).values())

    eventually(rolled, timeout=600, what="the gateway agent's runner on the new image",
               details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    status = kube.agent(agents_ns, "gateway")["status"]
    assert status["cost"]["totalUSD"] == pytest.approx(spent)
    operator = kube.pod(OPERATOR_NS, "app.kubernetes.io/name=llmagents")
    assert operator is not None and operator["spec"]["containers"][0]["image"] == new

    uninstalled = kube.helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    crds = kube.ok("get", "crd", "-o", "name")
    assert "llmagents.llmagents.dev" in crds and "providerpools.llmagents.dev" in crds
    assert "gateway" in kube.ok("-n", agents_ns, "get", "llmagents")
