"""A real Prometheus scrapes a real runner and fires the chart's circuit-open alert; another
scrapes the operator and fires the not-ready alert for an agent that has no pod.

The runner (``llmagents runner``, as the operator would start it: its ConfigMap, LLMAgent and
checkpoint ConfigMap in the namespace) works through a task list against two fake providers
on loopback; the primary is in an outage, so its circuit breaker opens and the calls fall back.
Prometheus (Debian's ``prometheus`` package) scrapes the runner's /metrics every second and
evaluates the chart's rule files.

One honest change makes this fit in a test: the alert's ``for: 5m`` becomes ``for: 2s``.
Its expression, labels and annotations are the shipped ones, byte for byte (asserted); that
the hold time itself works as written is what the promtool tests in tests/unit/alerts check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_crds import install_crds

from llmagents.api.runner_config import (
    RunnerConfig,
    checkpoint_config_map_name,
    results_config_map_names,
)
from llmagents.testing.fake_providers import FakeOpenAI, FaultPlan, ThreadedFake
from tooling._components import free_port
from tooling.cluster import ClusterInfo, Kubectl
from tooling.polling import eventually

# The chart's rule files are loaded the way the promtool tests load them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "alerts"))
from alert_rules import GROUP, load_rules, require_tool

pytestmark = pytest.mark.cluster

ALERT = "LLMAgentProviderCircuitOpen"
AGENT = "writer"
KEYS = {"primary": "sk-primary-0123456789", "fallback": "sk-fallback-0123456789"}


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


@pytest.fixture
def fakes() -> Iterator[dict[str, ThreadedFake]]:
    down = FaultPlan(outage=True)  # every call answers 503
    primary = FakeOpenAI(api_key=KEYS["primary"], faults=down).start_in_thread()
    fallback = FakeOpenAI(api_key=KEYS["fallback"]).start_in_thread()
    yield {"primary": primary, "fallback": fallback}
    primary.stop()
    fallback.stop()


def _pool(fakes: dict[str, ThreadedFake]) -> dict[str, Any]:
    providers = [
        {"name": name, "type": "openai", "model": "gpt-4o-mini", "priority": priority,
         "baseURL": fakes[name].base_url, "secretRef": {"name": "keys", "key": name},
         "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0},
         "timeout": "5s", "maxRetries": 0}
        for priority, name in enumerate(["primary", "fallback"], start=1)
    ]  # fmt: skip
    return {
        "providers": providers,
        "retry": {"initialDelay": "10ms", "jitter": 0},
        # Open after two failures and stay open for the whole test.
        "circuitBreaker": {"maxFailures": 2, "recoveryTime": "10m"},
    }


TASKS = [{"name": f"task-{i}", "prompt": f"Question number {i}?"} for i in range(4)]


def _agent_objects(kubectl: Kubectl, namespace: str, pool: dict[str, Any]) -> None:
    """What the operator would have made for the runner: its agent, pool and ConfigMaps."""
    kubectl.apply(
        yaml.safe_dump_all([
            {"apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
             "metadata": {"name": "pool"}, "spec": pool},
            {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
             "metadata": {"name": AGENT},
             "spec": {"poolRef": {"name": "pool"}, "work": {"tasks": TASKS}}},
        ] + [
            # Created empty, as the operator does, so that the runner needs no `create`.
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
            for name in [checkpoint_config_map_name(AGENT), *results_config_map_names(AGENT)]
        ])
    )  # fmt: skip
    uid = kubectl.json("get", "llmagent", AGENT)["metadata"]["uid"]
    config = RunnerConfig.model_validate({
        "agent": {"name": AGENT, "namespace": namespace, "uid": uid},
        "poolName": "pool",
        "pool": pool,
        "mode": "tasks",
        "tasks": TASKS,
        "checkpointInterval": "5s",
        "checkpointConfigMap": checkpoint_config_map_name(AGENT),
        "apiKeyEnv": {"primary": "KEY_PRIMARY", "fallback": "KEY_FALLBACK"},
    })  # fmt: skip
    kubectl.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{AGENT}-config"},
        "data": {"runner.yaml": config.render()},
    }))  # fmt: skip


@pytest.fixture
def runner(
    cluster: ClusterInfo, kubectl: Kubectl, namespace: str, fakes: dict[str, ThreadedFake],
    tmp_path: Path,
) -> Iterator[tuple[int, Path]]:  # fmt: skip
    _agent_objects(kubectl, namespace, _pool(fakes))
    port = free_port()
    env = {
        **os.environ,
        "LLMAGENTS_AGENT": AGENT,
        "LLMAGENTS_NAMESPACE": namespace,
        "LLMAGENTS_CONFIG_MAP": f"{AGENT}-config",
        "LLMAGENTS_METRICS_PORT": str(port),
        "LLMAGENTS_GATEWAY_PORT": str(free_port()),
        "KEY_PRIMARY": KEYS["primary"],
        "KEY_FALLBACK": KEYS["fallback"],
    }
    log = tmp_path / "runner.log"
    argv = [sys.executable, "-m", "llmagents.cli", "runner",
            "--kubeconfig", str(cluster.kubeconfig), "--metrics-host", "127.0.0.1"]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield port, log
    finally:
        _stop(proc)


def _rule_file(path: Path, alert: str = ALERT) -> Path:
    """The chart's rules, with the tested alert's hold time shortened (nothing else)."""
    rules = load_rules()
    shipped = next(r for r in rules if r["alert"] == alert)
    short = {**shipped, "for": "2s"}
    assert {k: v for k, v in short.items() if k != "for"} == {
        k: v for k, v in shipped.items() if k != "for"
    }
    rules = [short if r is shipped else r for r in rules]
    path.write_text(yaml.safe_dump({"groups": [{"name": GROUP, "rules": rules}]}))
    return path


def _start_prometheus(
    tmp_path: Path, scrape_configs: list[dict[str, Any]], alert: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    binary = require_tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(_rule_file(tmp_path / "rules.yaml", alert))],
        "scrape_configs": scrape_configs,
    }))  # fmt: skip
    log = tmp_path / "prometheus.log"
    argv = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


@pytest.fixture
def prometheus(
    runner: tuple[int, Path], namespace: str, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    runner_port, _ = runner
    proc, url, log = _start_prometheus(tmp_path, [{
        # The job name the chart's runner ServiceMonitor sets; the namespace label is
        # what Kubernetes service discovery would add.
        "job_name": "llmagents-runner",
        "static_configs": [{"targets": [f"127.0.0.1:{runner_port}"],
                            "labels": {"namespace": namespace}}],
    }], ALERT)  # fmt: skip
    try:
        yield url, log
    finally:
        _stop(proc)


def test_prometheus_fires_the_circuit_open_alert_from_a_real_runner(
    prometheus: tuple[str, Path], runner: tuple[int, Path], fakes: dict[str, ThreadedFake]
):
    url, prometheus_log = prometheus
    _, runner_log = runner

    def logs() -> str:
        return (
            f"runner log:\n{runner_log.read_text()[-3000:]}\n"
            f"prometheus log:\n{prometheus_log.read_text()[-2000:]}"
        )

    def firing() -> list[dict[str, Any]]:
        body = _get_json(f"{url}/api/v1/alerts") or {}
        alerts = (body.get("data") or {}).get("alerts", [])
        return [a for a in alerts if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]

    (alert,) = eventually(firing, timeout=120, what=lambda: f"{ALERT} to fire\n{logs()}")
    assert alert["labels"]["provider"] == "primary"
    assert alert["labels"]["agent"] == AGENT
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["runbook_url"].endswith(f"/{ALERT}.md")
    assert alert["annotations"]["summary"].startswith("Provider primary of agent ")

    # What Prometheus scraped: the primary's breaker open, the fallback's closed, and the
    # calls went to the fallback.
    query = f"{url}/api/v1/query?query=llmagents_breaker_state"
    states = {r["metric"]["provider"]: r["value"][1] for r in _get_json(query)["data"]["result"]}
    assert states == {"primary": "2", "fallback": "0"}
    assert fakes["primary"].stats()["requests"] >= 2
    assert fakes["fallback"].stats()["requests"] >= len(TASKS)


def test_an_agent_stuck_pending_with_no_pod_fires_not_ready_from_the_operators_gauge(
    cluster: ClusterInfo, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """No pool, so no pod and no runner metric at all: the operator's phase gauge alone,
    scraped as the chart's ServiceMonitor does (honorLabels), makes the alert fire."""
    from test_operator import OperatorProcess

    alert_name = "LLMAgentNotReady"
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path / "operator.log",
                               "--no-leader-election").start()  # fmt: skip
    proc, url, log = _start_prometheus(tmp_path, [{
        "job_name": "llmagents-operator",
        "honor_labels": True,
        # The operator pod's own namespace, which honor_labels must not let win.
        "static_configs": [{"targets": [f"127.0.0.1:{operator.port}"],
                            "labels": {"namespace": "llmagents-system"}}],
    }], alert_name)  # fmt: skip
    try:
        kubectl.apply(json.dumps({
            "apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
            "metadata": {"name": "orphan"},
            "spec": {"poolRef": {"name": "no-such-pool"},
                     "work": {"tasks": [{"name": "t", "prompt": "hello"}]}},
        }))  # fmt: skip

        def firing() -> list[dict[str, Any]]:
            body = _get_json(f"{url}/api/v1/alerts") or {}
            alerts = (body.get("data") or {}).get("alerts", [])
            return [a for a in alerts
                    if a["labels"]["alertname"] == alert_name and a["state"] == "firing"]  # fmt: skip

        (alert,) = eventually(
            firing,
            timeout=120,
            what=lambda: (
                f"{alert_name} to fire\n"
                f"{log.read_text()[-2000:]}\n{operator.log.read_text()[-2000:]}"
            ),
        )
        assert alert["labels"]["agent"] == "orphan"
        assert alert["labels"]["namespace"] == namespace
        assert alert["annotations"]["summary"] == (
            f"Agent {namespace}/orphan has not been ready for 10 minutes."
        )
        assert kubectl("get", "pods", "-o", "name").stdout.strip() == ""
    finally:
        _stop(proc)
        operator.stop()
