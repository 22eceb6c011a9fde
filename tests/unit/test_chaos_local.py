"""Chaos for ``llmagents run -f``: SIGKILL at random instants over a long run with a flapping
provider, audited against the fake providers' own counters (``tooling.audit``).

The runner is a real subprocess killed with SIGKILL (no handler runs) at a random moment
after it started working: before a call, during one, after an answer, while the checkpoint
or a result row is being written. It is started again on the same state until it finishes
by itself. Then every task must have exactly one result row, the checkpoint must count
every task done, and the recorded spend must match the providers' bill but for the calls in
flight at the kills. ``LLMAGENTS_CHAOS_SEED`` repeats a run's kill times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmagents.testing.fake_providers import ThreadedFake
from tooling.audit import Prices, audit
from tooling.chaos import ROUNDS, flapping_fakes, pool_documents

TASKS = [f"task-{i:02d}" for i in range(60)]
PRICES = {"inputPerMillion": 1000.0, "outputPerMillion": 2000.0}
KILLS = 15
KEY = "sk-chaos"


def manifest(primary: str, fallback: str) -> str:
    agent = {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
             "metadata": {"name": "chaos"},
             "spec": {"poolRef": {"name": "pool"}, "budget": {"limit": 50, "period": "total"},
                      "checkpointInterval": "30s",
                      "work": {"tasks": [{"name": name, "prompt": f"Chaos question {name}?"}
                                         for name in TASKS]}}}  # fmt: skip
    docs = pool_documents(primary, fallback, prices=PRICES, api_key=KEY)
    return yaml.safe_dump_all([*docs, agent])


@pytest.fixture
def fakes() -> Iterator[tuple[ThreadedFake, ThreadedFake]]:
    with flapping_fakes(KEY) as pair:
        yield pair


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


def _started(proc: subprocess.Popen[str], lines: list[str]) -> threading.Event:
    """Set once the runner says where its state is (it is about to claim and work)."""
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "state in" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    return started


@pytest.mark.timeout(170)
@pytest.mark.parametrize("round_", ROUNDS)
def test_sigkill_at_random_instants_loses_only_calls_in_flight(
    tmp_path: Path, fakes: tuple[ThreadedFake, ThreadedFake], round_: int
) -> None:
    seed = int(os.environ.get("LLMAGENTS_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    path = tmp_path / "agent.yaml"
    path.write_text(manifest(fakes[0].base_url, fakes[1].base_url))
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "llmagents.cli", "--log-level", "WARNING", "run", "-f",
            str(path), "--state-dir", str(state), "--once"]  # fmt: skip
    kills = 0
    began = time.monotonic()
    while True:
        lines: list[str] = []
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=_env())  # fmt: skip
        started = _started(proc, lines)
        try:
            assert started.wait(60), f"seed {seed}: the runner did not start: {lines}"
            if kills < KILLS:
                # Anywhere from claiming the checkpoint to a few tasks in: each life ends
                # a few tasks at most, so the run takes many lives.
                time.sleep(rng.uniform(0.0, 0.5))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills += 1
                    continue
            code = proc.wait(90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, f"seed {seed}: exit {code} after {kills} kills: {''.join(lines)}"
        break
    rows = [json.loads(line) for line in (state / "results.jsonl").read_text().splitlines()]
    checkpoint = json.loads((state / "checkpoint.json").read_text())["checkpoint"]
    report = audit(
        tasks=TASKS, rows=rows, checkpoint=checkpoint,
        stats={"primary": fakes[0].stats(), "fallback": fakes[1].stats()},
        prices={name: Prices(1000.0, 2000.0) for name in ("primary", "fallback")},
        kills=kills,
    )  # fmt: skip
    print(f"seed {seed}: {report.summary()} in {time.monotonic() - began:.0f} s")
    assert not report.problems, f"seed {seed}: {report.summary()}: {report.problems}"
    outcomes = fakes[0].stats()["outcomes"]
    assert sum(n for kind, n in outcomes.items() if kind != "ok") > 0  # the primary did flap
