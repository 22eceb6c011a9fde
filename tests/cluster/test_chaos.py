"""Chaos on the real control plane: the runner pod SIGKILLed at random instants while a
flapping provider makes it fall back, then audited against the fakes' own counters.

The operator runs the agent as a Deployment; the process kubelet runs its pod and restarts
the runner container after each kill with a short back-off (0.1 s, at most 0.3 s: the
default ten-second back-off of a real kubelet would make the test slow, not different).
Checkpoint and results go to ConfigMaps on the real API server, so every write the runner
makes is the compare-and-swap it makes in production. The audit is the one of the local
chaos test (``tooling.audit``): one result row per task, every task done in the
checkpoint, and spend matching the providers' bill but for the calls in flight at the kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_operator import OperatorProcess, get
from test_runner_e2e import crds, operator  # noqa: F401  (fixtures; crds is autouse)

from llmagents.testing.fake_providers import ThreadedFake
from tooling.audit import Prices, audit
from tooling.chaos import ROUNDS, flapping_fakes, pool_spec
from tooling.cluster import ClusterInfo, Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TASKS = [f"task-{i:02d}" for i in range(60)]
PRICES = {"inputPerMillion": 1000.0, "outputPerMillion": 2000.0}
KILLS = 8
KEY = "sk-chaos-cluster-0123456789"


@pytest.fixture
def kubelet(cluster: ClusterInfo, namespace: str, tmp_path: Path) -> Iterator[ProcessKubelet]:
    started = ProcessKubelet(cluster.kubeconfig, namespace=namespace,
                             state_dir=tmp_path / "kubelet", backoff_initial=0.1,
                             backoff_max=0.3, max_stop_grace=10.0)  # fmt: skip
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def fakes() -> Iterator[tuple[ThreadedFake, ThreadedFake]]:
    with flapping_fakes(KEY, latency="20:120") as pair:
        yield pair


def setup(kubectl: Kubectl, primary: str, fallback: str, *, chaos_agent: bool = True) -> None:
    kubectl("create", "secret", "generic", "keys", f"--from-literal=key={KEY}")
    pool = pool_spec(primary, fallback, prices=PRICES, secret_key="key")
    kubectl.apply(json.dumps({"apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
                              "metadata": {"name": "pool"}, "spec": pool}))  # fmt: skip
    if not chaos_agent:
        return
    agent = {"poolRef": {"name": "pool"}, "checkpointInterval": "30s",
             "budget": {"limit": 50, "period": "total"},
             "work": {"tasks": [{"name": n, "prompt": f"Chaos question {n}?"} for n in TASKS]}}  # fmt: skip
    kubectl.apply(json.dumps({"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
                              "metadata": {"name": "chaos"}, "spec": agent}))  # fmt: skip


def checkpoint(kubectl: Kubectl) -> dict[str, Any]:
    config_map = get(kubectl, "configmap", "chaos-checkpoint") or {}
    text = (config_map.get("data") or {}).get("checkpoint.json")
    return json.loads(text) if text else {}


def result_rows(kubectl: Kubectl) -> list[dict[str, Any]]:
    rows = []
    for index in range(4):
        data = (get(kubectl, "configmap", f"chaos-results-{index}") or {}).get("data") or {}
        rows.extend(json.loads(value) for value in data.values())
    return rows


def running_runner(
    kubelet: ProcessKubelet, namespace: str, not_pid: int | None, agent: str = "chaos"
) -> Any:
    for container in kubelet.statuses(namespace):
        if (container.container == "runner" and container.running and container.pid != not_pid
                and container.pod.startswith(f"{agent}-")):  # fmt: skip
            return container
    return None


def runner_log(kubelet: ProcessKubelet, namespace: str, kubectl: Kubectl) -> str:
    """Pods, events, the runner's statuses and the end of its log, for a failure message."""
    lines = [
        kubectl("get", "deploy,rs,pods", "-o", "wide", check=False).stdout,
        kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:],
    ]
    for container in kubelet.statuses(namespace):
        lines.append(f"{container.pod}/{container.container}: running={container.running} "
                     f"pid={container.pid} restarts={container.restart_count} "
                     f"exits={container.exit_codes[-5:]}")  # fmt: skip
        if container.container == "runner" and container.log_path.exists():
            lines.append(container.log_path.read_text(errors="replace")[-4000:])
    return "\n".join(lines)


@pytest.mark.timeout(170)
@pytest.mark.parametrize("round_", ROUNDS)
def test_a_runner_pod_killed_at_random_instants_loses_only_calls_in_flight(
    kubectl: Kubectl, namespace: str,
    operator: OperatorProcess,  # noqa: F811
    kubelet: ProcessKubelet,
    fakes: tuple[ThreadedFake, ThreadedFake], round_: int,
) -> None:  # fmt: skip
    seed = int(os.environ.get("LLMAGENTS_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    began = time.monotonic()
    setup(kubectl, fakes[0].base_url, fakes[1].base_url)
    pid: int | None = None
    kills = 0

    def done() -> bool:
        return len(checkpoint(kubectl).get("completed") or []) == len(TASKS)

    while kills < KILLS:
        # A runner whose tasks are all done is scaled to zero by the operator: not back.
        runner = eventually(lambda last=pid: done() or running_runner(kubelet, namespace, last),
                            timeout=60, what=f"seed {seed}: the runner running again after "
                            f"{kills} kills", details=lambda: runner_log(kubelet, namespace, kubectl))  # fmt: skip
        if runner is True:
            break  # done before every kill was spent: the audit still holds
        # From the process's start (imports, claim) to a few tasks in.
        time.sleep(rng.uniform(0.2, 3.0))
        pid = runner.pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        kills += 1
    eventually(lambda: len(checkpoint(kubectl).get("completed") or []) == len(TASKS)
               and not checkpoint(kubectl).get("unstoredResults")
               and len(result_rows(kubectl)) >= len(TASKS),
               timeout=120, what=f"seed {seed}: every task done and stored",
               details=lambda: runner_log(kubelet, namespace, kubectl))  # fmt: skip
    report = audit(
        tasks=TASKS, rows=result_rows(kubectl), checkpoint=checkpoint(kubectl),
        stats={"primary": fakes[0].stats(), "fallback": fakes[1].stats()},
        prices={name: Prices(1000.0, 2000.0) for name in ("primary", "fallback")},
        kills=kills,
    )  # fmt: skip
    print(f"seed {seed}: {report.summary()} in {time.monotonic() - began:.0f} s")
    assert not report.problems, f"seed {seed}: {report.summary()}: {report.problems}"
    assert kills >= KILLS // 2


def test_a_corrupt_checkpoint_stops_the_runner_with_a_condition_and_is_left_as_it_is(
    kubectl: Kubectl, namespace: str,
    operator: OperatorProcess,  # noqa: F811
    kubelet: ProcessKubelet,
    fakes: tuple[ThreadedFake, ThreadedFake],
) -> None:  # fmt: skip
    # Spend below zero would be a refund of everything spent: never restored.
    corrupt = {"schema": "llmagents.dev/checkpoint/v1", "agentUID": "x", "epoch": 3,
               "sequence": 9, "writtenAt": "2026-01-01T00:00:00+00:00",
               "startedAt": "2026-01-01T00:00:00+00:00",
               "progress": {"total": 30, "done": 0, "failed": 0}, "completed": [], "failed": {},
               "engine": {"version": 1, "spend": {"total": {"calls": 1, "inputTokens": 1,
                                                            "outputTokens": 1, "cost": -5.0},
                                                  "byProvider": {}},
                          "budget": None, "providers": {}}}  # fmt: skip
    kubectl.apply(json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chaos-checkpoint",
        "annotations": {"llmagents.dev/checkpoint-epoch": "3"}},
        "data": {"checkpoint.json": json.dumps(corrupt)}}))  # fmt: skip
    setup(kubectl, fakes[0].base_url, fakes[1].base_url)
    # The uid check comes first: give the stored checkpoint this agent's uid.
    uid = kubectl.json("get", "llmagent", "chaos")["metadata"]["uid"]
    corrupt["agentUID"] = uid
    kubectl("patch", "configmap", "chaos-checkpoint", "--type=merge", "-p",
            json.dumps({"data": {"checkpoint.json": json.dumps(corrupt)}}))  # fmt: skip
    before = get(kubectl, "configmap", "chaos-checkpoint") or {}

    def corrupt_condition() -> dict[str, Any] | None:
        status = (get(kubectl, "llmagent", "chaos") or {}).get("status") or {}
        found = [c for c in status.get("conditions") or [] if c["type"] == "CheckpointCorrupt"]
        return found[0] if found else None

    condition = eventually(corrupt_condition, timeout=90, what="the CheckpointCorrupt condition")
    assert condition["status"] == "True" and "cost -5.0" in condition["message"]
    assert "delete it to start afresh" in condition["message"]
    after = get(kubectl, "configmap", "chaos-checkpoint") or {}
    assert after["data"] == before["data"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert fakes[0].stats()["requests"] == 0 and fakes[1].stats()["requests"] == 0


SPENDER = textwrap.dedent(
    """
    import json, time
    import openai
    client = openai.OpenAI(max_retries=0, timeout=30)
    for _ in range(120):
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            time.sleep(0.5)
    messages = [{"role": "user", "content": "spend a little"}]
    for n in range(CALLS):
        try:
            raw = client.chat.completions.with_raw_response.create(model="auto",
                                                                   messages=messages)
        except openai.APIStatusError:
            continue  # no provider answered: nothing paid
        print(json.dumps({"n": n, "cost": float(raw.headers["x-llmagents-cost-usd"])}), flush=True)
    print("done", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_gateway_runner_comes_back_with_its_pods_spend_journal(
    kubectl: Kubectl, namespace: str,
    operator: OperatorProcess,  # noqa: F811
    kubelet: ProcessKubelet,
    fakes: tuple[ThreadedFake, ThreadedFake],
) -> None:  # fmt: skip
    # The runner's emptyDir outlives its process: the restarted runner of the same pod reads
    # the same journal, and spend answered just before the kill is in its checkpoint.
    # No chaos agent beside it: its runner must not be the one killed below.
    setup(kubectl, fakes[0].base_url, fakes[1].base_url, chaos_agent=False)
    script = SPENDER.replace("CALLS", "30")
    agent = {"poolRef": {"name": "pool"}, "checkpointInterval": "30s",
             "budget": {"limit": 50, "period": "total"},
             "work": {"agent": {"image": "example.com/llmagents-spender:1",
                                "command": ["python", "-c", script]}}}  # fmt: skip
    kubectl.apply(json.dumps({"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
                              "metadata": {"name": "spender"}, "spec": agent}))  # fmt: skip

    def agent_lines() -> list[str]:
        for container in kubelet.statuses(namespace):
            if container.container == "agent" and container.log_path.exists():
                return container.log_path.read_text().splitlines()
        return []

    eventually(lambda: "done" in agent_lines(), timeout=120, what="the agent's 30 calls",
               details=lambda: runner_log(kubelet, namespace, kubectl))  # fmt: skip
    pid = running_runner(kubelet, namespace, None, "spender").pid  # status updated in place
    os.kill(pid, signal.SIGKILL)  # within a moment of the last answer
    answered = sum(json.loads(line)["cost"] for line in agent_lines() if line.startswith("{"))
    before = json.loads(get(kubectl, "configmap", "spender-checkpoint")["data"]["checkpoint.json"])
    eventually(lambda: running_runner(kubelet, namespace, pid, "spender"), timeout=60,
               what="the runner restarted in its pod")  # fmt: skip

    def restored() -> dict[str, Any] | None:
        data = (get(kubectl, "configmap", "spender-checkpoint") or {}).get("data") or {}
        stored = json.loads(data.get("checkpoint.json") or "{}")
        return stored if stored.get("epoch", 0) > before["epoch"] else None

    after = eventually(restored, timeout=60, what="the restarted runner's claim",
                       details=lambda: runner_log(kubelet, namespace, kubectl))  # fmt: skip
    # One journal, the pod's: the restarted runner continued it rather than starting one.
    assert list(after["spendJournals"]) == list(before["spendJournals"])
    recorded = float(after["engine"]["spend"]["total"]["cost"])
    billed = sum(Prices(1000.0, 2000.0).cost(s["input_tokens"], s["output_tokens"])
                 for s in (fakes[0].stats(), fakes[1].stats()))  # fmt: skip
    assert answered - 1e-9 <= recorded <= billed + 1e-9
    assert recorded == pytest.approx(answered)  # nothing was in flight at the kill
