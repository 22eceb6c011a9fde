"""Start time of ``llmagents run -f``: what a restart after a kill costs before work resumes.

Two figures, each the best and the median of ``--runs`` runs (a shared machine's load falls
on single runs unevenly):

- import: the summed top-level ``-X importtime`` of ``llmagents run --help`` (the run path's
  modules, with argument parsing and no work);
- CPU: user + system time of ``llmagents run --help`` (no ``-X importtime``);
- first call: wall time from spawning ``llmagents run -f`` on a one-task manifest to the
  first request a fake OpenAI provider receives (the process is then killed).

``.venv/bin/python bench/startup.py --runs 5``
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from llmagents.testing.fake_providers import FakeOpenAI, FaultPlan
from tooling.chaos import pool_documents

KEY = "sk-startup"


def import_seconds() -> float:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llmagents.cli", "run", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    total = 0
    for line in done.stderr.splitlines():
        parts = line.split("|")
        # Top-level imports only: their cumulative times include everything below them.
        if len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  "):
            if parts[1].strip().isdigit():
                total += int(parts[1])
    return total / 1e6


def help_cpu_seconds() -> float:
    """CPU time (user + system) of ``llmagents run --help``: steadier than wall time under load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "llmagents.cli", "run", "--help"],
                   capture_output=True, check=True)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def first_call_seconds(url: str, stats: object, workdir: Path) -> float:
    manifest = workdir / "agent.yaml"
    agent = {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
             "metadata": {"name": "startup"},
             "spec": {"poolRef": {"name": "pool"},
                      "work": {"tasks": [{"name": "t", "prompt": "Hello?"}]}}}  # fmt: skip
    docs = pool_documents(url, url, prices={"inputPerMillion": 1.0, "outputPerMillion": 1.0},
                          api_key=KEY)  # fmt: skip
    manifest.write_text(yaml.safe_dump_all([*docs, agent]))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    before = stats()["requests"]  # type: ignore[operator]
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmagents.cli", "run", "-f", str(manifest),
         "--state-dir", str(workdir / "state")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = started + 60
        while stats()["requests"] == before:  # type: ignore[operator]
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("no call within 60 s (or the run ended first)")
            time.sleep(0.005)
        return time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    imports = [import_seconds() for _ in range(args.runs)]
    cpu = [help_cpu_seconds() for _ in range(args.runs)]
    fake = FakeOpenAI(api_key=KEY, faults=FaultPlan()).start_in_thread()
    try:
        calls = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                calls.append(first_call_seconds(fake.base_url, fake.stats, Path(tmp)))
    finally:
        fake.stop()
    for name, values in (("import (run --help)", imports), ("CPU of run --help", cpu),
                         ("spawn to first call", calls)):  # fmt: skip
        print(f"{name}: best {min(values):.2f} s, median {statistics.median(values):.2f} s")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
