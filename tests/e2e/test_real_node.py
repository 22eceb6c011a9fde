"""The images and the chart on a real node: containerd, runc, CNI and a real kubelet.

One cluster and node for the session; every test asks for what it builds on (the chart
installed, the quickstart run, the gateway agent) through conftest's fixtures, so each runs
alone as well as in the whole run, where each fixture is built once. The chart runs the
default image, as users get it; the with-model image serves one agent's sidecar. Agents
run in a namespace that enforces the restricted Pod Security Standard, as does the
operator's.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from node_e2e import (
    CHART,
    OPERATOR_NS,
    RELEASE,
    RESTRICTED,
    Fakes,
    GatewayRun,
    Kube,
    QuickstartRun,
    checkpoint,
    dump,
    hold_checkpoint,
    sample_peaks,
    spent,
    statuses,
)
from prometheus_client.parser import text_string_to_metric_families

from llmagents.testing.fake_providers import FaultPlan
from llmagents.testing.fake_providers.faults import Latency
from tooling.audit import Prices
from tooling.node import RealNode
from tooling.polling import eventually

# Pods start on a loaded 2-core machine; each wait below has its own deadline.
pytestmark = pytest.mark.timeout(1800)


def _container_pid(node: RealNode, container_id: str) -> int:
    tasks = node.ctr("tasks", "ls").stdout.decode().splitlines()
    cid = container_id.removeprefix("containerd://")
    return int(next(line.split()[1] for line in tasks if line.startswith(cid)))


def _images(pod: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["image"] for c in pod["spec"]["containers"]}


def test_the_operator_runs_from_the_default_image_non_root_on_a_read_only_root(
    kube: Kube, node: RealNode, release: str, image: str
) -> None:
    pod = kube.pod(OPERATOR_NS, "app.kubernetes.io/name=llmagents")
    assert pod is not None
    assert _images(pod)["operator"].startswith(image), pod["spec"]["containers"]
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


def test_helm_test_passes_against_the_install(kube: Kube, release: str) -> None:
    """`helm test`: its pod, admitted in the restricted namespace, finds the llmagents.dev
    API serving both resources and the operator's /readyz answering through its Service
    (by the API server's service proxy: this node has neither cluster DNS nor kube-proxy);
    its objects are gone once it passed."""
    # No --logs: helm 3 deletes a hook-succeeded pod before it would fetch them (helm#9098);
    # the pod passes only if both checks do, and a failed one is kept, with its log.
    tested = kube.helm("test", RELEASE, "--namespace", OPERATOR_NS, "--timeout", "300s")
    out = tested.stdout + tested.stderr
    pod_log = kube.kubectl("-n", OPERATOR_NS, "logs", f"{RELEASE}-test-readiness").stdout
    assert tested.returncode == 0, out + pod_log + kube.diagnostics(OPERATOR_NS)
    assert re.search(r"Phase:\s+Succeeded", out), out
    left = kube.ok("-n", OPERATOR_NS, "get", "pods,serviceaccounts,roles,rolebindings",
                   "-l", "app.kubernetes.io/component=test", "-o", "name")  # fmt: skip
    assert left.strip() == "", left


def test_quickstart_falls_back_to_smollm2_converted_on_first_start_in_the_sidecar(
    kube: Kube, quickstart: QuickstartRun, agents_ns: str, image: str
) -> None:
    status = kube.agent(agents_ns, "quickstart")["status"]
    assert status["tasks"]["done"] == 3 and status["tasks"]["failed"] == 0
    results = kube.json("-n", agents_ns, "get", "configmap", "quickstart-results-0")["data"]
    answers = [json.loads(v) for v in results.values()]
    assert {a["provider"] for a in answers} == {"local"}, answers
    assert all(a["text"].strip() for a in answers)
    # The runner reached both fakes over the pod network before falling back.
    assert quickstart.requests["anthropic"] > 0 and quickstart.requests["openai"] > 0
    # The default image has no model: the sidecar converted SmolLM2 within its default
    # memory limit, without being killed for it.
    assert quickstart.images["onnx"] == image
    assert "converted" in quickstart.onnx_log, quickstart.onnx_log[-2000:]
    assert quickstart.restarts == {"runner": 0, "onnx": 0}, quickstart.terminations
    table = kube.ok("-n", agents_ns, "get", "llmagents")
    assert "quickstart" in table and "Completed" in table
    # The README's troubleshooting: the runner's log through the API server and kubelet.
    assert quickstart.runner_log, "kubectl logs deploy/quickstart -c runner showed no task lines"


def test_the_with_model_image_serves_its_baked_model(
    kube: Kube, fakes: Fakes, release: str, agents_ns: str, model_image: str,
    memory_report: dict[str, dict[str, int]],
) -> None:  # fmt: skip
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    fakes.openai.set_faults(FaultPlan(outage=True))
    docs = fakes.quickstart("baked")
    agent = next(d for d in docs if d["kind"] == "LLMAgent")
    agent["spec"]["onnx"] = {"image": model_image}
    agent["spec"]["work"]["tasks"] = agent["spec"]["work"]["tasks"][:1]
    kube.ok("-n", agents_ns, "apply", "-f", "-", input=dump(docs))
    peaks: dict[str, int] = {}
    images: dict[str, str] = {}

    def completed() -> bool:
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=baked")
        sample_peaks(pod, peaks)
        if pod is not None:
            images.update(_images(pod))
        return kube.agent(agents_ns, "baked").get("status", {}).get("phase") == "Completed"

    eventually(completed, timeout=600, what="the baked-model agent to complete", every=1.0,
               details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    memory_report["with-model image sidecar (SmolLM2 baked in), one task"] = peaks
    assert images["onnx"] == model_image, images
    results = kube.json("-n", agents_ns, "get", "configmap", "baked-results-0")["data"]
    assert [json.loads(v)["provider"] for v in results.values()] == ["local"]


def test_a_runner_killed_by_the_runtime_resumes_from_its_checkpoint(
    kube: Kube, node: RealNode, fakes: Fakes, release: str, agents_ns: str
) -> None:
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    # Slow answers, so that the kill lands mid-list whatever the machine's load.
    fakes.openai.set_faults(FaultPlan(latency=Latency(ms=4000)))
    before = fakes.requests()["openai"]
    docs = fakes.quickstart("resumer", local=False)
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
    runner = statuses(pod)["runner"]
    node.kill_container(runner["containerID"])

    def restarted() -> bool:
        p = kube.pod(agents_ns, "app.kubernetes.io/instance=resumer")
        s = statuses(p or {}).get("runner", {})
        return s.get("restartCount", 0) >= 1 and bool(s.get("ready"))

    eventually(restarted, timeout=300, what="the kubelet to restart the runner")
    last = statuses(kube.pod(agents_ns, "app.kubernetes.io/instance=resumer") or {})["runner"]
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
    calls = fakes.requests()["openai"] - before
    assert 8 <= calls <= 9, calls
    spent = sum(json.loads(v)["costUSD"] for v in results.values())
    assert status["cost"]["totalUSD"] == pytest.approx(spent, rel=1e-6, abs=1e-9)


def test_a_gateway_agent_with_the_openai_sdk_gets_answers_with_fallback(
    gateway_agent: GatewayRun,
) -> None:
    out = gateway_agent.agent_log
    assert out.count("from gpt") == 3, out  # claude is down: the engine fell back
    assert gateway_agent.status["cost"]["totalUSD"] > 0


# Three more questions from the agent's own container, through the runner's gateway, each
# answer with the provider that gave it.
_ASK = """
from openai import OpenAI
client = OpenAI(max_retries=0, timeout=60)
for i in range(3):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", max_tokens=16,
        messages=[{"role": "user", "content": f"Extra question {i + 1}: name a colour."}])
    print("answered by", raw.headers.get("x-llmagents-provider"), raw.parse().usage.total_tokens)
"""


def test_a_gateway_runner_killed_right_after_its_answers_keeps_their_spend(
    kube: Kube, node: RealNode, fakes: Fakes, gateway_agent: GatewayRun, agents_ns: str
) -> None:
    """The spend journal on a real node: while an admission policy refuses every
    checkpoint write but a new runner's claim, the agent's container gets three answers,
    the runner is SIGKILLed by the runtime the moment they are back, and the kubelet
    restarts it: its claim carries their spend (replayed from the journal in the pod's
    emptyDir), which is what the fakes' own token counters bill for them."""
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    fakes.openai.set_faults(FaultPlan())
    pool = next(d for d in fakes.quickstart("gateway", local=False) if d["kind"] == "ProviderPool")
    prices = {p["type"]: Prices(p["pricing"]["inputPerMillion"], p["pricing"]["outputPerMillion"])
              for p in pool["spec"]["providers"]}  # fmt: skip
    hold = hold_checkpoint(agents_ns, "gateway", "e2e-hold-gateway-checkpoint")
    kube.ok("apply", "-f", "-", input=dump(hold))
    try:
        version, epoch, before = checkpoint(kube, agents_ns, "gateway")
        probe = ["-n", agents_ns, "patch", "configmap", "gateway-checkpoint", "--dry-run=server",
                 "--type=merge", "-p", '{"metadata": {"labels": {"e2e-probe": "1"}}}']  # fmt: skip

        def held() -> bool:  # the API server's policy informer has it: writes are refused
            refused = kube.kubectl(*probe)
            return refused.returncode != 0 and "e2e-hold-gateway-checkpoint" in refused.stderr

        eventually(held, timeout=60, what="the checkpoint hold to be enforced")
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=gateway")
        assert pod is not None
        runner = statuses(pod)["runner"]
        stats = {"anthropic": fakes.anthropic.stats(), "openai": fakes.openai.stats()}
        asked = kube.ok("-n", agents_ns, "exec", pod["metadata"]["name"], "-c", "agent", "--",
                        "/opt/agent/bin/python", "-c", _ASK)  # fmt: skip
        node.kill_container(runner["containerID"])  # the moment the answers are back
        assert asked.count("answered by gpt") == 3, asked
        after = {"anthropic": fakes.anthropic.stats(), "openai": fakes.openai.stats()}
        # No checkpoint landed meanwhile: the answers' spend was in the journal alone.
        assert checkpoint(kube, agents_ns, "gateway")[0] == version
        assert after["openai"]["outcomes"].get("ok", 0) - stats["openai"]["outcomes"].get(
            "ok", 0) == 3, (stats, after)  # fmt: skip
        charged = sum(
            prices[name].cost(after[name]["input_tokens"] - stats[name]["input_tokens"],
                              after[name]["output_tokens"] - stats[name]["output_tokens"])
            for name in after
        )  # fmt: skip
        assert charged > 0

        def claimed() -> tuple[str, int, dict[str, Any]] | None:
            found = checkpoint(kube, agents_ns, "gateway")
            return found if found[1] > epoch else None

        _, _, restored = eventually(claimed, timeout=300, what="the restarted runner's claim",
                                    details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    finally:
        kube.kubectl("delete", "-f", "-", "--ignore-not-found", input=dump(hold))
    last = statuses(kube.pod(agents_ns, "app.kubernetes.io/instance=gateway") or {})["runner"]
    assert last["restartCount"] == runner["restartCount"] + 1, last
    assert last["lastState"]["terminated"]["exitCode"] == 137, last  # SIGKILL
    recorded = spent(restored) - spent(before)
    # Every answered call's spend survived the kill, and nothing beyond what was billed.
    assert recorded == pytest.approx(charged, rel=1e-6), (recorded, charged)
    journals = {j: n for j, n in restored["spendJournals"].items()
                if n > before["spendJournals"].get(j, -1)}  # fmt: skip
    assert journals, (before["spendJournals"], restored["spendJournals"])  # replayed from it


def test_restricted_namespaces_admit_every_pod_of_ours_and_refuse_others(
    kube: Kube, release: str, quickstart: QuickstartRun, gateway_agent: GatewayRun,
    agents_ns: str, image: str,
) -> None:  # fmt: skip
    namespaces = (OPERATOR_NS, agents_ns)
    for ns in namespaces:
        labels = kube.json("get", "namespace", ns)["metadata"]["labels"]
        assert labels.items() >= RESTRICTED.items(), labels
        # The admission is enforced, not merely labelled: a privileged pod is refused.
        canary = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "canary"},
                  "spec": {"containers": [{"name": "c", "image": image,
                                           "securityContext": {"privileged": True}}]}}  # fmt: skip
        refused = kube.kubectl("-n", ns, "create", "--dry-run=server", "-f", "-",
                               input=json.dumps(canary))  # fmt: skip
        assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused
    # Every pod of ours as the API server would create it now: a pod of each Deployment's
    # template (the operator; agents with the ONNX sidecar and with their own container,
    # scaled down or not). `helm test`'s pod ran in the restricted namespace (above).
    pods: dict[str, dict[str, Any]] = {}
    for ns in namespaces:
        for deploy in kube.json("-n", ns, "get", "deployments")["items"]:
            meta = {"name": f"pss-{deploy['metadata']['name']}", "namespace": ns}
            pods[f"{ns}/{deploy['metadata']['name']}"] = {
                "apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": deploy["spec"]["template"]["spec"],
            }  # fmt: skip
    containers = {c["name"] for pod in pods.values() for c in pod["spec"]["containers"]}
    assert {"operator", "runner", "onnx", "agent"} <= containers, containers
    for name, pod in pods.items():
        ns = pod["metadata"].get("namespace", OPERATOR_NS)
        created = kube.kubectl("-n", ns, "create", "--dry-run=server", "-f", "-",
                               input=json.dumps(pod))  # fmt: skip
        assert created.returncode == 0, f"{name}: {created.stderr}"
    # And none of the pods the controllers made was refused along the way.
    for ns in namespaces:
        refusals = kube.ok("-n", ns, "get", "events", "--field-selector=reason=FailedCreate")
        assert "PodSecurity" not in refusals, refusals


def _budget_remaining(pod: dict[str, Any]) -> float:
    """``llmagents_budget_remaining_usd`` from the pod's runner, scraped over the pod
    network: computed by the runner process when scraped."""
    runner = next(c for c in pod["spec"]["containers"] if c["name"] == "runner")
    port = next(p["containerPort"] for p in runner["ports"] if p["name"] == "metrics")
    url = f"http://{pod['status']['podIP']}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llmagents_budget_remaining_usd":
                return float(sample.value)
    raise AssertionError(f"no llmagents_budget_remaining_usd at {url}")


def test_helm_upgrade_rolls_everything_without_losing_spend_and_uninstall_keeps_crds(
    kube: Kube, node: RealNode, image: str, release: str, gateway_agent: GatewayRun,
    fakes: Fakes, agents_ns: str,
) -> None:  # fmt: skip
    before = kube.agent(agents_ns, "gateway")["status"]
    spent = before["cost"]["totalUSD"]
    assert spent > 0, before["cost"]  # something to lose
    asked = fakes.requests()["openai"]
    old_pod = kube.pod(agents_ns, "app.kubernetes.io/instance=gateway")
    assert old_pod is not None
    remaining = _budget_remaining(old_pod)  # the runner process's own account
    assert remaining < 1.0, remaining  # the quickstart's budget: 1.0 USD in total
    repository, tag = image.rsplit(":", 1)
    new = f"{repository}:{tag}-upgraded"
    tagged = node.ctr("images", "tag", "--force", image, new)  # the same layers, a new name
    assert tagged.returncode == 0, tagged.stderr
    upgraded = kube.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", OPERATOR_NS, "--reuse-values",
        "--set", f"image.tag={tag}-upgraded", "--wait", "--timeout", "300s",
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr

    def rolled() -> dict[str, Any] | None:
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=gateway")
        if pod is None or _images(pod)["runner"] != new or not pod["status"].get("podIP"):
            return None
        containers = statuses(pod).values()
        return pod if containers and all(s.get("ready") for s in containers) else None

    pod = eventually(rolled, timeout=600, what="the gateway agent's runner on the new image",
                     details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    # The new runner process restored the spend from the checkpoint: its budget is what
    # the old one's was (read from it, not from the status the old one wrote) ...
    assert _budget_remaining(pod) == pytest.approx(remaining)
    # ... and so is what it reports.
    status = kube.agent(agents_ns, "gateway")["status"]
    assert status["cost"]["totalUSD"] == pytest.approx(spent), status["cost"]
    assert status["cost"]["spentUSD"] == pytest.approx(before["cost"]["spentUSD"])

    # The agent's container came back with its checkpointed state and asked nothing again.
    def agent_started() -> str:
        logs = kube.kubectl("-n", agents_ns, "logs", "deploy/gateway", "-c", "agent")
        return logs.stdout if "starting with" in logs.stdout else ""

    agent_log = eventually(agent_started, timeout=120, what="the new agent container's start")
    assert "starting with 3 answered" in agent_log, agent_log
    assert fakes.requests()["openai"] == asked
    operator = kube.pod(OPERATOR_NS, "app.kubernetes.io/name=llmagents")
    assert operator is not None and _images(operator)["operator"] == new

    uninstalled = kube.helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait")
    assert uninstalled.returncode == 0, uninstalled.stderr
    left = kube.ok("-n", OPERATOR_NS, "get", "deployments,serviceaccounts", "-o", "name")
    assert f"deployment.apps/{RELEASE}" not in left, left  # the release is gone ...
    for crd in ("llmagents.llmagents.dev", "providerpools.llmagents.dev"):  # ... its CRDs not
        kept = kube.json("get", "crd", crd)["metadata"]
        assert kept["annotations"].get("helm.sh/resource-policy") == "keep", kept
    # Nor the agents, their spend, or their Deployments (owned by the agents, not the chart).
    assert kube.agent(agents_ns, "gateway")["status"]["cost"]["totalUSD"] == pytest.approx(spent)
    assert kube.kubectl("-n", agents_ns, "get", "deployment", "gateway").returncode == 0
