"""``llmagents run``: a manifest's agent on this machine, against fake providers on loopback.

The command runs as a real subprocess (as a user runs it), so Ctrl-C is a real SIGINT;
the fakes serve from threads of the test process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmagents import local_run
from llmagents.api.runner_config import RunnerConfig
from llmagents.api.status import RunnerAgentStatus, TaskProgress, format_usd
from llmagents.local_manifest import load_manifest, local_keys
from llmagents.local_table import COLUMNS, agent_row, human_duration, json_number
from llmagents.operator.builders import runner_config
from llmagents.operator.settings import OperatorSettings
from llmagents.testing.fake_providers import FakeAnthropic, FakeOpenAI, FaultPlan, ThreadedFake
from tooling.polling import eventually

Runs = Callable[..., "Done"]
PRICES = {"inputPerMillion": 1000.0, "outputPerMillion": 2000.0}
REPO = Path(__file__).resolve().parents[2]


def manifest(primary: str, fallback: str, local: str, *, tasks: int = 3, budget: float = 5) -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
         "stringData": {"anthropic": "sk-ant-from-manifest", "openai": "sk-openai-from-manifest"}},
        {"apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
         "metadata": {"name": "pool"},
         "spec": {
             "providers": [
                 {"name": "claude", "type": "anthropic", "model": "claude-sonnet-4-5",
                  "baseURL": primary, "secretRef": {"name": "keys", "key": "anthropic"},
                  "priority": 1, "pricing": PRICES, "timeout": "5s", "maxRetries": 1},
                 {"name": "gpt", "type": "openai", "model": "gpt-4o-mini", "baseURL": fallback,
                  "secretRef": {"name": "keys", "key": "openai"}, "priority": 2,
                  "pricing": PRICES, "timeout": "5s", "maxRetries": 1},
                 {"name": "local", "type": "onnx", "model": "smollm2-135m-instruct",
                  "baseURL": local, "priority": 3, "timeout": "5s"},
             ],
             "retry": {"initialDelay": "20ms", "jitter": 0},
             "circuitBreaker": {"maxFailures": 2, "recoveryTime": "5m"},
         }},
        {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
         "metadata": {"name": "writer"},
         "spec": {"poolRef": {"name": "pool"}, "budget": {"limit": budget, "period": "total"},
                  "checkpointInterval": "30s",
                  "work": {"tasks": [{"name": f"task-{i}", "prompt": f"Question {i}?",
                                      "complexity": "medium"} for i in range(tasks)]}}},
    ]  # fmt: skip
    return yaml.safe_dump_all(docs)


class Fakes:
    def __init__(self) -> None:
        self.claude = FakeAnthropic(api_key=None, faults=FaultPlan(outage=True)).start_in_thread()
        self.gpt = FakeOpenAI(api_key="sk-openai-from-manifest").start_in_thread()
        self.local = FakeOpenAI(api_key=None, models=["smollm2-135m-instruct"]).start_in_thread()

    def all(self) -> list[ThreadedFake]:
        return [self.claude, self.gpt, self.local]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    started = Fakes()
    yield started
    for fake in started.all():
        fake.stop()


@pytest.fixture
def manifest_file(tmp_path: Path, fakes: Fakes) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(manifest(fakes.claude.base_url, fakes.gpt.base_url, fakes.local.base_url))
    return path


def run_args(manifest_file: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llmagents.cli", "--log-level", "WARNING", "run",
            "-f", str(manifest_file), "--state-dir", str(state), *extra]  # fmt: skip


def _env() -> dict[str, str]:
    # The vendor variables of the developer's shell would win over the manifest's Secret.
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runs:
    """``llmagents run`` in this process (the SIGINT test needs a subprocess instead)."""
    for name in list(os.environ):
        if name.endswith("_API_KEY"):
            monkeypatch.delenv(name)

    def run_here(manifest_file: Path, state: Path, *extra: str) -> Done:
        parser = argparse.ArgumentParser()
        local_run.add_arguments(parser)
        args = parser.parse_args(["-f", str(manifest_file), "--state-dir", str(state), *extra])
        code = local_run.main(args)
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return run_here


def results(state: Path) -> list[dict[str, Any]]:
    path = state / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def checkpoint(state: Path) -> dict[str, Any]:
    return json.loads((state / "checkpoint.json").read_text())["checkpoint"]


def rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.strip()]


def test_every_task_completes_on_the_fallback_while_the_primary_is_out(
    manifest_file: Path, fakes: Fakes, tmp_path: Path, run: Runs
):
    done = run(manifest_file, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert table[0] == list(COLUMNS)
    name, phase, provider, healthy, cost, budget, tasks, _age = table[-1]
    assert (name, phase, provider, healthy, budget, tasks) == (
        "writer",
        "Completed",
        "gpt",
        "2/3",
        "5",
        "3/3",
    )
    assert "Degraded" in [row[1] for row in table[1:]]
    found = results(tmp_path / "state")
    assert [(r["task"], r["provider"], r["ok"]) for r in found] == [
        (f"task-{i}", "gpt", True) for i in range(3)
    ]
    total = sum(r["costUSD"] for r in found)  # the runner sums in another order: a hair apart
    assert cost in {format_usd(total * (1 - 1e-9)), format_usd(total * (1 + 1e-9))} - {"$0"}
    assert fakes.claude.stats()["outcomes"].get("outage", 0) >= 2
    assert fakes.local.stats()["requests"] == 0


def test_sigint_saves_and_a_rerun_resumes_without_repeating_a_task_or_losing_spend(
    tmp_path: Path, fakes: Fakes, run: Runs
):
    fakes.gpt.update_faults(latency="300")
    path = tmp_path / "agent.yaml"
    path.write_text(manifest(fakes.claude.base_url, fakes.gpt.base_url, fakes.local.base_url,
                             tasks=6))  # fmt: skip
    state = tmp_path / "state"
    proc = subprocess.Popen(run_args(path, state), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip

    def two_ended() -> bool:
        assert proc.poll() is None, proc.communicate()
        return len(results(state)) >= 2

    eventually(two_ended, timeout=30, every=0.05, what="two tasks ended")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Run the same command again to resume" in stderr
    first = checkpoint(state)
    done_before = first["completed"]
    assert 2 <= len(done_before) < 6
    spent_before = first["engine"]["spend"]["total"]["cost"]
    assert spent_before > 0

    again = run(path, state)
    assert again.returncode == 0, again.stderr
    found = results(state)
    assert sorted(r["task"] for r in found) == [f"task-{i}" for i in range(6)]
    final = checkpoint(state)
    assert final["completed"][: len(done_before)] == done_before
    assert final["engine"]["spend"]["total"]["cost"] == pytest.approx(
        sum(r["costUSD"] for r in found)
    )
    assert rows(again.stdout)[-1][6] == "6/6"


def test_a_spent_total_budget_ends_the_run_with_the_reason_instead_of_waiting(
    tmp_path: Path, fakes: Fakes
):
    path = tmp_path / "agent.yaml"
    # Each task is estimated at about $1.03 (512 output tokens at $2000 per million): the
    # first fits, the second finds no room and goes to the free local model, the third stops.
    path.write_text(manifest(fakes.claude.base_url, fakes.gpt.base_url, fakes.local.base_url,
                             tasks=4, budget=1.05))  # fmt: skip
    state = tmp_path / "state"
    done = subprocess.run(run_args(path, state), capture_output=True, text=True, env=_env(),
                          timeout=60)  # fmt: skip
    assert done.returncode == local_run.EXIT_BUDGET_SPENT, done.stderr
    assert "budget exhausted: budget of $1.05 per total period has no room left" in done.stderr
    assert [(r["task"], r["provider"]) for r in results(state)] == [
        ("task-0", "gpt"), ("task-1", "local")]  # fmt: skip
    assert checkpoint(state)["engine"]["budget"]["spent"] <= 1.05


def test_a_completed_agent_runs_nothing_again_until_reset(
    manifest_file: Path, fakes: Fakes, tmp_path: Path, run: Runs
):
    state = tmp_path / "state"
    assert run(manifest_file, state).returncode == 0
    calls = fakes.gpt.stats()["requests"]
    again = run(manifest_file, state, "--once")
    assert again.returncode == 0, again.stderr
    assert fakes.gpt.stats()["requests"] == calls
    assert len(rows(again.stdout)) == 2  # --once: the header and the final row
    fresh = run(manifest_file, state, "--reset")
    assert fresh.returncode == 0
    assert fakes.gpt.stats()["requests"] == calls + 3


def test_a_gateway_agent_reporting_done_ends_the_run_and_a_rerun_serves_nothing(
    manifest_file: Path, fakes: Fakes, tmp_path: Path, run: Runs
):
    docs = list(yaml.safe_load_all(manifest_file.read_text()))
    docs[-1]["spec"]["work"] = {"agent": {"image": "example.test/agent:1"}}
    path = tmp_path / "gateway-agent.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    state = tmp_path / "state"
    proc = subprocess.Popen(run_args(path, state, "--gateway-port", "0"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the gateway announces its address
            if line.startswith("gateway at "):
                root = line.split()[2].removesuffix(":")
                break
        else:
            pytest.fail(f"no gateway address: {proc.communicate()}")
        ask = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}
        assert httpx.post(f"{root}/chat/completions", json=ask, timeout=30).status_code == 200
        done = httpx.post(f"{root}/agent/complete", json={"summary": "said hi"}, timeout=30)
        assert done.status_code == 200, done.text
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "the agent reported its work done: said hi ($" in stderr
    assert checkpoint(state)["completion"]["summary"] == "said hi"
    calls = fakes.gpt.stats()["requests"]
    again = run(path, state, "--gateway-port", "0")
    assert again.returncode == 0 and "already reported its work done" in again.stderr
    assert fakes.gpt.stats()["requests"] == calls == 1


def test_the_manifest_becomes_the_operators_runner_config_with_keys_from_env_first(
    manifest_file: Path,
):
    local = load_manifest(manifest_file.read_text())
    assert local.agent.namespace == "default"
    assert local.agent.uid == load_manifest(manifest_file.read_text()).agent.uid
    config = runner_config(local.agent, local.pool, OperatorSettings())
    assert isinstance(config, RunnerConfig)
    assert [t.name for t in config.tasks or []] == ["task-0", "task-1", "task-2"]
    env = {"LLMAGENTS_API_KEY_CLAUDE": "sk-runner-var", "ANTHROPIC_API_KEY": "sk-vendor",
           "OPENAI_API_KEY": "sk-openai-vendor"}  # fmt: skip
    assert local_keys(local, env) == {"claude": "sk-runner-var", "gpt": "sk-openai-vendor"}
    assert local_keys(local, {}) == {
        "claude": "sk-ant-from-manifest",
        "gpt": "sk-openai-from-manifest",
    }


def test_a_key_that_cannot_go_in_a_header_is_refused_naming_where_it_came_from(
    manifest_file: Path, tmp_path: Path, run: Runs, monkeypatch: pytest.MonkeyPatch
):
    key = "sk-openai-with-a-bom-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", "\ufeff" + key + "\n")
    done = run(manifest_file, tmp_path / "state")
    assert done.returncode == 2
    assert "environment variable OPENAI_API_KEY" in done.stderr and "U+FEFF" in done.stderr
    assert key not in done.stderr + done.stdout
    local = load_manifest(manifest_file.read_text())
    assert local_keys(local, {"OPENAI_API_KEY": " sk-openai-padded\n"})["gpt"] == (
        "sk-openai-padded"
    )


def test_a_manifest_without_the_agents_pool_is_refused_with_the_pools_name(
    tmp_path: Path, run: Runs
):
    text = manifest("http://127.0.0.1:1", "http://127.0.0.1:1", "http://127.0.0.1:1")
    docs = [d for d in yaml.safe_load_all(text) if d["kind"] != "ProviderPool"]
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    done = run(path, tmp_path / "state")
    assert done.returncode == 2
    assert "ProviderPool 'pool'" in done.stderr


def test_the_quickstart_example_loads_as_a_local_agent():
    local = load_manifest((REPO / "examples" / "quickstart.yaml").read_text())
    assert local.agent.name == "quickstart"
    assert local.secrets["llm-keys"]["anthropic"] == "replace-me"


def test_the_row_has_kubectls_columns_and_formats():
    local = load_manifest(manifest("https://a", "https://b", "https://c"))
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    status = RunnerAgentStatus.model_validate({
        "runnerPhase": "Running", "currentProvider": "gpt", "startedAt": now - timedelta(minutes=3),
        "providers": [{"name": "claude", "healthy": False}, {"name": "gpt", "healthy": True}],
        "cost": {"spentUSD": 4.38e-05, "totalUSD": 4.38e-05},
        "tasks": {"done": 1, "failed": 0, "total": 3},
    })  # fmt: skip
    assert TaskProgress(done=1, total=3).summary == "1/3"
    assert agent_row(local.agent, status, now) == {
        "NAME": "writer", "PHASE": "Degraded", "PROVIDER": "gpt", "HEALTHY": "1/2",
        "COST": "$0.000044", "BUDGET": "5", "TASKS": "1/3", "AGE": "3m",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
     (30 * 3600, "30h"), (50 * 3600, "2d2h"), (400 * 86400, "400d"), (800 * 86400, "2y70d")],
)  # fmt: skip
def test_ages_read_as_kubectl_prints_them(seconds: int, text: str):
    assert human_duration(seconds) == text


def test_numbers_read_as_kubectl_prints_json_numbers():
    assert [json_number(v) for v in (1.0, 0.0142, 4.38e-05, None)] == [
        "1",
        "0.0142",
        "4.38e-05",
        "",
    ]
