"""The runner end to end on the real control plane: operator, process kubelet, fake providers.

Each test applies a ProviderPool and an LLMAgent, runs the operator (``llmagents operator``)
for its namespace, and lets the process kubelet run the runner pods as local processes;
the fake providers are loopback servers in this process. What is checked is what a user
would see: ``kubectl get llmagents``, the agent's status, its checkpoint and results
ConfigMaps, the runner's ``/metrics`` and logs.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from test_crds import install_crds
from test_operator import OperatorProcess, get

from llmagents.api.runner_config import ENV_ONNX_MODEL_DIR
from llmagents.api.status import format_usd
from llmagents.onnx.generation import SamplingParams, TextGenerator
from llmagents.onnx.model_dir import GENERATION_CONFIG_FILE
from llmagents.onnx.tiny import TINY_MODEL_NAME, build_tiny_model
from llmagents.testing.fake_providers import FakeOpenAI, ThreadedFake
from tooling.cluster import ClusterInfo, Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PLANTED_KEY = "sk-planted-e2e-7f3a9c1d5b2e8f40"
FALLBACK_KEY = "sk-fallback-e2e-0123456789"
PRICES = {"inputPerMillion": 1000.0, "outputPerMillion": 2000.0}


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


@pytest.fixture
def operator(cluster: ClusterInfo, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, namespace, tmp_path / "operator.log",
                         "--no-leader-election")  # fmt: skip
    op.start()
    yield op
    op.stop()


class Fakes:
    """The paid providers: primary and fallback. The free one is the real ONNX sidecar."""

    def __init__(self, *, primary_key: str = PLANTED_KEY) -> None:
        self.primary = FakeOpenAI(api_key=primary_key).start_in_thread()
        self.fallback = FakeOpenAI(api_key=FALLBACK_KEY).start_in_thread()

    def stop(self) -> None:
        for fake in (self.primary, self.fallback):
            fake.stop()


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    started = Fakes()
    yield started
    started.stop()


def setup(
    kubectl: Kubectl, fakes: Fakes, *, local: bool = False, primary_key: str = PLANTED_KEY,
    **pool: Any,
) -> None:  # fmt: skip
    """The Secret with the planted key and the pool ``pool`` over the fakes."""
    kubectl("create", "secret", "generic", "keys", f"--from-literal=primary={primary_key}",
            f"--from-literal=fallback={FALLBACK_KEY}")  # fmt: skip
    providers: list[dict[str, Any]] = [
        {"name": "primary", "type": "openai", "model": "gpt-4o-mini", "priority": 1,
         "baseURL": fakes.primary.base_url, "secretRef": {"name": "keys", "key": "primary"},
         "pricing": PRICES, "timeout": "5s", "maxRetries": 0},
        {"name": "fallback", "type": "openai", "model": "gpt-4.1", "priority": 2,
         "baseURL": fakes.fallback.base_url, "secretRef": {"name": "keys", "key": "fallback"},
         "pricing": PRICES, "timeout": "5s", "maxRetries": 0},
    ]  # fmt: skip
    if local:
        # No baseURL: the runner calls the sidecar the operator adds to the pod.
        providers.append({"name": "local", "type": "onnx", "model": TINY_MODEL_NAME,
                          "priority": 3, "timeout": "30s"})  # fmt: skip
    spec = {"providers": providers, "retry": {"initialDelay": "50ms", "jitter": 0},
            "circuitBreaker": {"maxFailures": 2, "recoveryTime": "5m"}, **pool}  # fmt: skip
    kubectl.apply(json.dumps({"apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
                              "metadata": {"name": "pool"}, "spec": spec}))  # fmt: skip


def apply_agent(kubectl: Kubectl, name: str, *, tasks: int | None = None, **spec: Any) -> None:
    work = spec.pop("work", None) or {
        "tasks": [{"name": f"task-{i}", "prompt": f"Question number {i}?", "maxOutputTokens": 8,
                   "estimatedOutputTokens": 1} for i in range(tasks or 0)]
    }  # fmt: skip
    body = {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent", "metadata": {"name": name},
            "spec": {"poolRef": {"name": "pool"}, "work": work, "checkpointInterval": "5s",
                     **spec}}  # fmt: skip
    kubectl.apply(json.dumps(body))


def status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return (get(kubectl, "llmagent", name) or {}).get("status") or {}


def checkpoint(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    config_map = get(kubectl, "configmap", f"{name}-checkpoint") or {}
    text = (config_map.get("data") or {}).get("checkpoint.json")
    return json.loads(text) if text else None


def results(kubectl: Kubectl, name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for index in range(4):
        data = (get(kubectl, "configmap", f"{name}-results-{index}") or {}).get("data") or {}
        found.update({task: json.loads(value) for task, value in data.items()})
    return found


def table_row(kubectl: Kubectl, name: str) -> dict[str, str]:
    lines = kubectl("get", "llmagents").stdout.splitlines()
    header = lines[0].split()
    for line in lines[1:]:
        cells = line.split()
        if cells[0] == name:
            return dict(zip(header, cells, strict=False))
    return {}


def runner_status(kubelet: ProcessKubelet, namespace: str) -> Any:
    for container in kubelet.statuses(namespace):
        if container.container == "runner" and container.running:
            return container
    return None


def spent(fake: ThreadedFake) -> float:
    stats = fake.stats()
    return (stats["input_tokens"] * PRICES["inputPerMillion"]
            + stats["output_tokens"] * PRICES["outputPerMillion"]) / 1e6  # fmt: skip


def completed(kubectl: Kubectl, name: str, summary: str, *, timeout: float) -> dict[str, Any]:
    """The agent's status once it is Completed with ``summary``: its Ready condition says so
    and its runner Deployment is scaled to zero."""

    def done() -> dict[str, Any] | None:
        current = status(kubectl, name)
        reported = (current.get("completion") or {}).get("summary")
        return current if current.get("phase") == "Completed" and reported == summary else None

    current = eventually(done, timeout=timeout, what=f"{name} completed with {summary!r}")
    ready = next(c for c in current["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AgentCompleted")
    assert ready["message"] == f"the agent reported its work done: {summary}"
    eventually(lambda: get(kubectl, "deployment", name)["spec"]["replicas"] == 0,
               timeout=30, what="the runner Deployment scaled to zero")  # fmt: skip
    return current


def test_primary_down_every_task_completes_on_the_fallback_and_kubectl_shows_it(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    process_kubelet: ProcessKubelet, fakes: Fakes,
) -> None:  # fmt: skip
    fakes.primary.update_faults(outage=True)
    setup(kubectl, fakes)
    apply_agent(kubectl, "writer", tasks=5, budget={"limit": 10})

    def finished() -> dict[str, str] | None:
        row = table_row(kubectl, "writer")
        return row if row.get("TASKS") == "5/5" and row.get("PROVIDER") == "fallback" else None

    row = eventually(finished, timeout=120, what="5/5 tasks on the fallback")
    assert row["HEALTHY"] == "1/2"
    spent_usd = status(kubectl, "writer")["cost"]["spentUSD"]
    assert spent_usd == pytest.approx(spent(fakes.fallback))
    assert row["COST"] == format_usd(spent_usd) != "$0"
    stored = results(kubectl, "writer")
    assert sorted(stored) == [f"task-{i}" for i in range(5)]
    assert {r["provider"] for r in stored.values()} == {"fallback"}
    current = status(kubectl, "writer")
    assert current["runnerPhase"] == "Completed"
    primary = next(p for p in current["providers"] if p["name"] == "primary")
    assert primary["breakerState"] == "open"
    assert fakes.fallback.stats()["requests"] == 5
    assert primary["openSince"] and primary["openUntil"] and primary["errorRate"] == 1.0
    assert "consecutive failures" in primary["breakerReason"]
    assert primary["lastFailure"]["reason"]
    fallback = next(p for p in current["providers"] if p["name"] == "fallback")
    assert fallback["costUSD"] == pytest.approx(spent_usd)
    assert fallback["price"]["source"] == "spec"
    eventually(lambda: status(kubectl, "writer").get("phase") == "Completed", timeout=60,
               what="the operator's verdict")  # fmt: skip

    # The runner's Events (events.k8s.io/v1, written with its own Role) as describe shows them.
    def described() -> str | None:
        text = kubectl("describe", "llmagent", "writer").stdout
        wanted = ("CircuitOpened", "FellBack", "TasksCompleted")
        return text if all(reason in text for reason in wanted) else None

    text = eventually(described, timeout=60, what="the runner's events in describe")
    print(text)  # read it with -s: the Events table under the status
    events = text[text.index("Events:") :]
    assert "Warning  CircuitOpened" in events and "provider primary: circuit open until" in events
    assert "fell back from primary to fallback" in events
    # Five fallbacks in a minute are one Event with a count, not five.
    listed = json.loads(kubectl("get", "events.events.k8s.io", "-o", "json").stdout)["items"]
    fell = [e for e in listed if e["reason"] == "FellBack"]
    assert len(fell) == 1 and fell[0]["reportingController"] == "llmagents.dev/runner"

    # The pool: one agent of one sees primary open, since when, and the operator says so.
    def pool_described() -> str | None:
        text = kubectl("describe", "providerpool", "pool").stdout
        return text if "CircuitOpened" in text and "Open Since" in text else None

    text = eventually(pool_described, timeout=60, what="the fleet's circuit in describe")
    print(text)
    assert "llmagents.dev/operator" in text
    assert "provider primary: circuit open for 1 of 1 agents since" in text


def test_a_killed_runner_resumes_from_its_checkpoint_with_nothing_lost_or_done_twice(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    process_kubelet: ProcessKubelet, fakes: Fakes,
) -> None:  # fmt: skip
    fakes.primary.update_faults(latency="300")
    setup(kubectl, fakes)
    apply_agent(kubectl, "worker", tasks=12)
    eventually(lambda: len((checkpoint(kubectl, "worker") or {}).get("completed", [])) >= 3,
               timeout=120, what="three tasks checkpointed")  # fmt: skip
    victim = runner_status(process_kubelet, namespace)
    assert victim is not None and victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)

    eventually(lambda: (status(kubectl, "worker").get("tasks") or {}).get("done") == 12,
               timeout=180, what="all tasks done after the restart")  # fmt: skip
    assert victim.restart_count >= 1
    requests = fakes.primary.stats()["requests"]
    assert 12 <= requests <= 13  # at most the call in flight at the kill ran again
    stored = results(kubectl, "worker")
    assert sorted(stored) == sorted(f"task-{i}" for i in range(12))
    cost = eventually(lambda: (status(kubectl, "worker").get("cost") or {}).get("totalUSD"),
                      what="cost in status")  # fmt: skip
    # The fake counted every answer it sent; the runner lost at most the one in flight.
    one_call = spent(fakes.primary) / requests
    assert spent(fakes.primary) - 1.5 * one_call <= cost <= spent(fakes.primary) + 1e-9
    saved = checkpoint(kubectl, "worker")
    assert saved is not None and saved["epoch"] >= 2
    assert sorted(saved["completed"]) == sorted(stored)


def test_a_new_agent_skips_a_provider_the_fleet_already_found_down(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    process_kubelet: ProcessKubelet, fakes: Fakes,
) -> None:  # fmt: skip
    fakes.primary.update_faults(outage=True)
    setup(kubectl, fakes)
    apply_agent(kubectl, "pioneer", tasks=3)

    def pool_sees_it_open() -> bool:
        providers = ((get(kubectl, "providerpool", "pool") or {}).get("status") or {}).get(
            "providers") or []  # fmt: skip
        return any(p["name"] == "primary" and p.get("openBreakers", 0) >= 1 for p in providers)

    eventually(pool_sees_it_open, timeout=120, what="the pool reporting primary open")
    failed_calls = fakes.primary.stats()["requests"]
    assert failed_calls == 2  # maxFailures of the pioneer

    apply_agent(kubectl, "follower", tasks=3)
    eventually(lambda: (status(kubectl, "follower").get("tasks") or {}).get("done") == 3,
               timeout=120, what="the follower done on the fallback")  # fmt: skip
    assert fakes.primary.stats()["requests"] == failed_calls  # not one attempt by the follower
    follower = {p["name"]: p for p in status(kubectl, "follower")["providers"]}
    assert follower["primary"]["breakerState"] == "open"
    assert {r["provider"] for r in results(kubectl, "follower").values()} == {"fallback"}


def test_the_runner_keeps_working_while_the_api_server_is_stopped_and_status_catches_up(
    cluster: ClusterInfo, kube_client: client.ApiClient, kubectl: Kubectl, namespace: str,
    operator: OperatorProcess, process_kubelet: ProcessKubelet, fakes: Fakes,
) -> None:  # fmt: skip
    control_plane = cluster.local
    if control_plane is None:
        pytest.skip("the API server of an external cluster is not ours to stop")
    fakes.primary.update_faults(latency="400")
    setup(kubectl, fakes)
    tasks, outage = 64, 20.0  # 64 calls of 400 ms outlast the 20 s outage
    apply_agent(kubectl, "steady", tasks=tasks)
    eventually(lambda: (status(kubectl, "steady").get("tasks") or {}).get("done", 0) >= 2,
               timeout=120, what="the runner at work")  # fmt: skip
    before = fakes.primary.stats()["requests"]
    control_plane.stop_component("kube-apiserver", kill=True)
    try:
        time.sleep(outage)  # the outage itself is what is being tested
        during = fakes.primary.stats()["requests"] - before
    finally:
        control_plane.start_component("kube-apiserver")
    assert during >= 20  # about 45 calls fit in 20 s at 400 ms each; work never waited
    eventually(lambda: (status(kubectl, "steady").get("tasks") or {}).get("done") == tasks,
               timeout=120, what=f"status caught up with all {tasks} tasks")  # fmt: skip
    # Results the outage kept from the API are written after status (with the next save).
    eventually(lambda: len(results(kubectl, "steady")) == tasks, timeout=60,
               what=f"all {tasks} results stored")  # fmt: skip
    assert fakes.primary.stats()["requests"] == tasks
    # Leave the control plane as found: the controller manager's informers reconnect with
    # back-off, and the next test's namespace needs its default service account in time.
    core = client.CoreV1Api(kube_client)
    probe = f"{namespace}-after"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=probe)))
    try:
        eventually(lambda: core.list_namespaced_service_account(
            probe, field_selector="metadata.name=default").items, timeout=90,
            what="the serviceaccount controller back at work")  # fmt: skip
    finally:
        core.delete_namespace(probe)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model, greedy (its generation config samples otherwise), so that every
    answer it gives is known in advance."""
    directory = build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    generation = directory / GENERATION_CONFIG_FILE
    generation.write_text(json.dumps({**json.loads(generation.read_text()), "temperature": 0.0}))
    return directory


def tiny_answer(model_dir: Path, prompt: str, max_tokens: int) -> str:
    generator = TextGenerator(model_dir, threads=1)
    tokens = generator.format.prompt([{"role": "user", "content": prompt}])
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    return "".join(d.text for d in generator.stream(tokens, params))


@pytest.fixture
def model_kubelet(
    cluster: ClusterInfo, namespace: str, tmp_path: Path, tiny_model: Path
) -> Iterator[ProcessKubelet]:
    """The process kubelet running our image as its ``with-model`` build: the Dockerfile's
    ``ENV LLMAGENTS_ONNX_MODEL_DIR`` there names the baked model, here the tiny one. The
    agent mounts no model volume, so the operator's onnx container serves the image's."""
    kubelet = ProcessKubelet(
        cluster.kubeconfig, namespace=namespace, state_dir=tmp_path / "kubelet",
        backoff_initial=0.5, backoff_max=5.0, max_stop_grace=10.0,
        extra_env={ENV_ONNX_MODEL_DIR: str(tiny_model)},
    )  # fmt: skip
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()


def test_budget_stop_stops_and_local_only_continues_on_the_onnx_sidecar(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    model_kubelet: ProcessKubelet, fakes: Fakes, tiny_model: Path,
) -> None:  # fmt: skip
    setup(kubectl, fakes, local=True)
    # Each call is estimated below $0.012 and would cost more: the hard cap lowers the first
    # call's output limit to fit, and after it no paid call fits in what is left.
    apply_agent(kubectl, "thrifty", tasks=4, budget={"limit": 0.012, "onExhausted": "stop"})
    apply_agent(kubectl, "frugal", tasks=4, budget={"limit": 0.012, "onExhausted": "local-only"})

    def frugal_sidecar() -> Any:
        return next((c for c in model_kubelet.statuses(namespace)
                     if c.container == "onnx" and c.pod.startswith("frugal-")
                     and c.running), None)  # fmt: skip

    sidecar = eventually(frugal_sidecar, timeout=120, what="frugal's onnx container running")

    eventually(lambda: status(kubectl, "thrifty").get("phase") == "BudgetExhausted",
               timeout=120, what="thrifty stopped for budget",
               details=lambda: json.dumps(status(kubectl, "thrifty"), indent=1))  # fmt: skip
    eventually(lambda: get(kubectl, "deployment", "thrifty")["spec"]["replicas"] == 0,
               what="thrifty scaled to zero")  # fmt: skip
    # The task that found no paid provider fitting went to the free sidecar (a call that does
    # not fit goes to a cheaper provider); the next one found the budget exhausted and stopped.
    thrifty = status(kubectl, "thrifty")
    assert (thrifty.get("tasks") or {}).get("done") == 2
    assert thrifty["cost"]["spentUSD"] <= 0.012
    assert [r["provider"] for _, r in sorted(results(kubectl, "thrifty").items())] == [
        "primary", "local"]  # fmt: skip

    eventually(lambda: (status(kubectl, "frugal").get("tasks") or {}).get("done") == 4,
               timeout=120, what="frugal finished on the onnx sidecar")  # fmt: skip
    frugal = results(kubectl, "frugal")
    assert frugal["task-0"]["provider"] == "primary"
    for i in (1, 2, 3):
        answer = frugal[f"task-{i}"]
        assert (answer["provider"], answer["model"], answer["costUSD"]) == (
            "local", TINY_MODEL_NAME, 0.0)  # fmt: skip
        assert answer["text"] == tiny_answer(tiny_model, f"Question number {i}?", 8)
    current = status(kubectl, "frugal")
    assert current["budgetExhausted"] is True
    # Spend stopped at the one paid call: what the primary charged frugal, nothing more.
    assert current["cost"]["totalUSD"] == pytest.approx(frugal["task-0"]["costUSD"], rel=1e-9)
    assert fakes.primary.stats()["requests"] == 2  # one call by each agent
    assert fakes.fallback.stats()["requests"] == 0
    # The sidecar served from its first start: no crash loop (it may since have been
    # stopped with the pod, as the operator scales a finished agent to zero).
    assert sidecar.restart_count == 0
    assert f"as '{TINY_MODEL_NAME}'" in sidecar.log_path.read_text()


AGENT_SCRIPT = textwrap.dedent(
    """
    import json, os, time
    import openai
    # What credentials this container holds (under the process kubelet a mount is a path
    # under LLMAGENTS_ROOT; a real pod's token would be at the path itself).
    token = os.path.join(os.environ.get("LLMAGENTS_ROOT", "/"),
                         "var/run/secrets/kubernetes.io/serviceaccount/token")
    credentials = {"kubeconfig": os.environ.get("KUBECONFIG"), "token": os.path.exists(token)}
    client = openai.OpenAI(max_retries=0, timeout=30)
    for _ in range(120):
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            time.sleep(0.5)
    messages = [{"role": "user", "content": "hello from the agent container"}]
    plain = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
    chunks = client.chat.completions.create(model="auto", messages=messages, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    print(json.dumps({"provider": plain.headers.get("x-llmagents-provider"),
                      "plain": plain.parse().choices[0].message.content,
                      "stream": streamed, "credentials": credentials}), flush=True)
    time.sleep(600)
    """
)


def agent_answer(kubelet_dir: Path) -> dict[str, Any] | None:
    """The first JSON line an agent container printed to its log (its answer), if any."""
    for log in kubelet_dir.rglob("agent.log"):
        for line in log.read_text().splitlines():
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]
    return None


def test_gateway_mode_serves_an_openai_client_in_another_process_through_fallback(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    process_kubelet: ProcessKubelet, fakes: Fakes, tmp_path: Path,
) -> None:  # fmt: skip
    # The API server admits only pods that meet the restricted Pod Security Standard.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    fakes.primary.update_faults(outage=True)
    setup(kubectl, fakes)
    agent = {
        "image": "example.com/llmagents-e2e-agent:1",
        "command": ["python", "-c", AGENT_SCRIPT],
    }
    apply_agent(kubectl, "chatty", work={"agent": agent})

    got = eventually(lambda: agent_answer(tmp_path / "kubelet"), timeout=120,
                     what="the agent container's answer")  # fmt: skip
    assert got["provider"] == "fallback"
    assert got["plain"].startswith("[fake-openai:gpt-4.1] answer to: hello from the agent")
    assert got["stream"] == got["plain"]
    assert fakes.fallback.stats()["requests"] == 2
    # The agent's own container holds no credentials; the runner beside it, with its
    # projected token, writes the status.
    assert got["credentials"] == {"kubeconfig": None, "token": False}
    eventually(lambda: status(kubectl, "chatty").get("currentProvider") == "fallback",
               timeout=60, what="status shows the fallback")  # fmt: skip


def test_a_planted_api_key_never_appears_in_logs_status_checkpoints_metrics_or_events(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    process_kubelet: ProcessKubelet, tmp_path: Path,
) -> None:  # fmt: skip
    fakes = Fakes(primary_key="sk-the-real-one-differs")  # the planted key is refused: 401
    try:
        fakes.fallback.update_faults(latency="300")
        setup(kubectl, fakes)
        apply_agent(kubectl, "secretive", tasks=20)
        eventually(lambda: len((checkpoint(kubectl, "secretive") or {}).get("completed", [])) >= 2,
                   timeout=120, what="the runner at work")  # fmt: skip
        pod = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"][0]
        url = f"http://{pod['status']['podIP']}:9100/metrics"  # the operator's metrics port
        with urllib.request.urlopen(url, timeout=5) as response:
            metrics = response.read().decode()
        assert (
            'llmagents_requests_total{agent="secretive",outcome="auth",provider="primary"}'
            in metrics
        )

        # Once done, the operator scales the agent to zero: the runner's logs are complete.
        eventually(lambda: status(kubectl, "secretive").get("phase") == "Completed",
                   timeout=120, what="the agent completed")  # fmt: skip
        eventually(lambda: runner_status(process_kubelet, namespace) is None, timeout=60,
                   what="the runner stopped")  # fmt: skip
        current = status(kubectl, "secretive")
        primary = next(p for p in current["providers"] if p["name"] == "primary")
        assert primary["misconfigured"].startswith("auth")
        texts = {
            "status": json.dumps(get(kubectl, "llmagent", "secretive")),
            "configmaps": kubectl("get", "configmaps", "-o", "json").stdout,
            "events": kubectl("get", "events", "-o", "json").stdout,
            "metrics": metrics,
            "operator log": operator.log.read_text(),
        }
        logs = list((tmp_path / "kubelet").rglob("*.log"))
        assert any(p.name == "runner.log" and "final checkpoint saved" in p.read_text()
                   for p in logs)  # fmt: skip
        texts.update({str(p): p.read_text() for p in logs})
        leaks = [where for where, text in texts.items() if PLANTED_KEY in text]
        assert leaks == []
        assert "ProviderMisconfigured" in texts["events"]
    finally:
        fakes.stop()


def test_a_key_with_a_byte_order_mark_holds_the_agent_back_naming_the_secret_not_the_key(
    kubectl: Kubectl, namespace: str, operator: OperatorProcess,
    process_kubelet: ProcessKubelet, fakes: Fakes, tmp_path: Path,
) -> None:  # fmt: skip
    # A key file saved as "UTF-8 with BOM": before, the failed header encoding's repr, with
    # the key escaped past the redactor, became the agent's status message.
    setup(kubectl, fakes, primary_key="\ufeff" + PLANTED_KEY)
    apply_agent(kubectl, "bom", tasks=2)

    def held_back() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in status(kubectl, "bom").get("conditions") or []}
        resolved = conditions.get("PoolResolved") or {}
        return resolved if resolved.get("reason") == "SecretKeyInvalid" else None

    resolved = eventually(held_back, timeout=60, what="the operator to refuse the key")
    assert "Secret 'keys', key 'primary'" in resolved["message"]
    assert "U+FEFF" in resolved["message"]
    assert status(kubectl, "bom")["phase"] == "Pending"
    assert get(kubectl, "deployment", "bom") is None  # no runner ever holds the key
    # Fixed in place, the agent goes on without anyone touching it.
    kubectl("delete", "secret", "keys")
    kubectl("create", "secret", "generic", "keys", f"--from-literal=primary={PLANTED_KEY}",
            f"--from-literal=fallback={FALLBACK_KEY}")  # fmt: skip
    eventually(lambda: status(kubectl, "bom").get("phase") == "Completed", timeout=120,
               what="the agent to run once the key is fixed")  # fmt: skip
    texts = [
        json.dumps(get(kubectl, "llmagent", "bom")),
        kubectl("get", "events", "-o", "json").stdout,
        operator.log.read_text(),
    ]
    texts += [p.read_text() for p in (tmp_path / "kubelet").rglob("*.log")]
    assert not [t for t in texts if "\ufeff" + PLANTED_KEY in t or repr("\ufeff")[1:-1] in t]
