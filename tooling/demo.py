"""``python -m tooling.demo up|down``: the whole product on this machine, in a few minutes (``make demo``).

``up`` starts a local control plane named ``demo`` (``testing.cluster``), the process
kubelet (so pods of our image become local processes), fake providers on loopback (the
Anthropic primary in an outage, the OpenAI-compatible fallback slowed to two seconds a
call), installs the Helm chart (CRDs and the operator, whose pod the process kubelet runs),
and applies ``examples/quickstart.yaml`` with its base URLs pointed at the fakes. While
``kubectl get llmagents`` shows the agent fall back from claude to gpt, it switches an
outage on at gpt too, so that the remaining tasks are answered by the free local model:
SmolLM2 in the runner pod's ONNX sidecar. When the agent is Completed it prints the answers
and where to look next, and returns; everything stays up for exploration until ``down``.

With ``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY`` or ``GEMINI_API_KEY`` set, those providers
are the real services (no fake, no outage) and the key goes into the Secret.

Every process started here is recorded in ``<state>/pids`` (default
``~/.cache/llmagents/demo``); ``down`` stops them and the control plane. All waits poll
with deadlines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tooling import _proc, polling
from tooling.cluster import (
    REPO_ROOT,
    ClusterError,
    Kubectl,
    LocalCluster,
    default_state_root,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
CLUSTER = "demo"
AGENT = "quickstart"
RELEASE = "llmagents"
OPERATOR_NAMESPACE = "llmagents-system"
OPERATOR_PORT = 8081
QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
CHART = REPO_ROOT / "charts" / "llmagents"
FALLBACK_LATENCY_MS = 2000
"""Each gpt answer takes this long, so that the outage switched on after its first answer
lands between tasks."""
REAL_KEYS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
}


def state_dir() -> Path:
    explicit = os.environ.get("LLMAGENTS_DEMO_DIR")
    return Path(explicit) if explicit else default_state_root().parent / "demo"


def eventually(
    probe: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.5
) -> T:
    """``polling.eventually``, failing as ``ClusterError`` (what the demo reports)."""
    try:
        return polling.eventually(probe, timeout=timeout, what=what, every=every)
    except polling.NotReached as missed:
        raise ClusterError(str(missed)) from None


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


class Demo:
    """One demo installation: its state directory, cluster and background processes."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.pids = state / "pids"
        self.logs = state / "logs"
        self.cluster = LocalCluster(CLUSTER)
        self.kubectl: Kubectl | None = None
        self.fakes: dict[str, str] = {}  # protocol -> root URL of a fake we started

    # -- background processes ------------------------------------------------------------

    def spawn(self, name: str, argv: list[str]) -> Path:
        log = self.logs / f"{name}.log"
        proc = _proc.spawn(argv, log_path=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _proc.record_pid(self.pids, proc.pid, name)
        return log

    def down(self) -> None:
        stopped = _proc.kill_recorded(self.pids, grace=15.0)
        self.cluster.stop()
        print(f"demo: stopped {stopped} background processes and the control plane")

    # -- steps -----------------------------------------------------------------------------

    def start_cluster(self) -> Kubectl:
        _say("starting the local control plane (etcd, kube-apiserver, controllers, kwok)")
        began = time.monotonic()
        self.cluster.start(timeout=240)
        print(f"control plane ready in {time.monotonic() - began:.0f} s at {self.cluster.server}")
        self.kubectl = Kubectl(self.cluster.kubectl, self.cluster.kubeconfig, "default")
        self.spawn("kubelet", [sys.executable, "-m", "tooling.kubelet",
                               "--kubeconfig", str(self.cluster.kubeconfig),
                               "--state-dir", str(self.state / "kubelet"), "--backoff", "2"])  # fmt: skip
        return self.kubectl

    def prepare_model(self) -> None:
        _say("preparing the local fallback model (SmolLM2-135M-Instruct as ONNX, cached)")
        from llmagents.onnx.convert import ensure_smollm2

        began = time.monotonic()
        print(f"model at {ensure_smollm2()} ({time.monotonic() - began:.0f} s)")

    def start_fakes(self, real: dict[str, str]) -> None:
        plans = {"anthropic": ["--outage", "0:"],
                 "openai": ["--latency-ms", str(FALLBACK_LATENCY_MS)]}  # fmt: skip
        for protocol, flags in plans.items():
            if protocol in real:
                continue
            log = self.spawn(f"fake-{protocol}", [
                sys.executable, "-m", "llmagents.cli", "fake-provider", "--protocol", protocol,
                "--port", "0", *flags])  # fmt: skip
            line = eventually(lambda log=log: _ready_line(log), timeout=30,
                              what=f"the fake {protocol} provider ({log})")  # fmt: skip
            self.fakes[protocol] = line.split(" ready at ")[1].strip().removesuffix("/v1")
        if self.fakes:
            _say("fake providers: " + ", ".join(f"{p} at {u}" for p, u in self.fakes.items()))
        if "anthropic" in self.fakes:
            print("the fake Anthropic API (the pool's primary, claude) is in an outage: 503s")

    def install_operator(self) -> str:
        _say("installing the Helm chart (CRDs + operator; the process kubelet runs its pod)")
        helm = self.cluster.bin_dir / "helm"
        values = ["--set", "operator.bindAddress=$(POD_IP)", "--set", "operator.logFormat=plain",
                  "--set", "operator.leaderElection.renewSeconds=2"]  # fmt: skip
        subprocess.run(
            [str(helm), "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
             "--create-namespace", "--kubeconfig", str(self.cluster.kubeconfig), *values,
             "--wait", "--timeout", "180s"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        assert self.kubectl is not None
        ops = Kubectl(self.kubectl.exe, self.kubectl.kubeconfig, OPERATOR_NAMESPACE)
        ip = eventually(lambda: _pod_ip(ops), timeout=60, what="the operator pod's address")
        url = f"http://{ip}:{OPERATOR_PORT}"
        eventually(lambda: _ready(f"{url}/readyz"), timeout=120,
                   what=f"the operator to lead and be ready (log under {self.state / 'kubelet'})")  # fmt: skip
        print(f"operator ready; its metrics at {url}/metrics")
        return url

    def apply_quickstart(self, real: dict[str, str]) -> None:
        _say("kubectl apply -f examples/quickstart.yaml (base URLs pointed at the fakes)")
        docs = quickstart_docs(QUICKSTART.read_text(), fakes=self.fakes, real=real)
        assert self.kubectl is not None
        print(self.kubectl.apply(yaml.safe_dump_all(docs)).stdout.rstrip())

    def watch(self, *, timeout: float) -> bool:
        """Print ``kubectl get`` as it changes until the agent is Completed; True when it
        completed with every task done."""
        assert self.kubectl is not None
        kubectl = self.kubectl
        _say("kubectl get llmagents,providerpools (printed when something changes)")
        deadline = time.monotonic() + timeout
        shown = ""
        flipped = "openai" not in self.fakes
        while time.monotonic() < deadline:
            # Status first: the tables printed are then at least as new as the phase seen.
            status = _agent(kubectl).get("status", {})
            tables = "\n".join(
                kubectl("get", kind, check=False).stdout for kind in ("llmagents", "providerpools")
            )
            key = re.sub(r"\s+\S+\s*$", "", tables, flags=re.MULTILINE)  # ignore AGE
            if key != shown:
                print(tables, flush=True)
                shown = key
            if status.get("phase") == "Completed":
                return not status.get("tasks", {}).get("failed")
            if not flipped and _results(kubectl):
                _outage(self.fakes["openai"])
                print(
                    "==> gpt answered its first task; now gpt is out too (a total outage "
                    "of the paid providers): the rest falls to the local ONNX model\n"
                )
                flipped = True
            time.sleep(2)
        return False

    def report(self, operator_url: str) -> None:
        assert self.kubectl is not None
        kubectl = self.kubectl
        _say("kubectl get llmagents -o wide")
        print(kubectl("get", "llmagents", "-o", "wide").stdout.rstrip())
        _say(f"the answers (ConfigMap {AGENT}-results-0)")
        results = _results(kubectl)
        for task in _agent(kubectl)["spec"]["work"]["tasks"]:
            entry = results.get(task["name"], {})
            text = " ".join(str(entry.get("text") or entry.get("error")).split())
            print(f"- {task['name']} [{entry.get('provider', 'failed')}]: {text[:300]}")
        exe = self.cluster.kubectl
        exe = "kubectl" if shutil.which("kubectl") == exe else exe
        _say("where to look next")
        steps = [
            (f"export KUBECONFIG={self.cluster.kubeconfig}", ""),
            (f"{exe} get llm", "agents and pools"),
            (f"{exe} describe llmagent {AGENT}", "conditions, providers, cost"),
            (
                f"{exe} get configmap {AGENT}-results-0 -o yaml",
                "every answer, its provider and cost",
            ),
            (f"curl {operator_url}/metrics", "the operator's metrics"),
            ("llmagents run -f examples/quickstart.yaml", "the same agent without Kubernetes"),
            ("make demo-down", "stop everything"),
        ]
        width = max(len(command) for command, _ in steps)
        for command, comment in steps:
            print(f"  {command.ljust(width)}  # {comment}" if comment else f"  {command}")
        print(f"  logs: {self.state / 'kubelet'} (pods), {self.logs}, {self.cluster.logs}")


def _ready_line(log: Path) -> str | None:
    text = log.read_text(errors="replace") if log.exists() else ""
    return next((line for line in text.splitlines() if " ready at " in line), None)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return False
    return bool(body.get("ready") and body.get("leading"))


def _pod_ip(kubectl: Kubectl) -> str | None:
    pods = kubectl.json("get", "pods").get("items", [])
    return next((p["status"]["podIP"] for p in pods if p.get("status", {}).get("podIP")), None)


def _outage(root_url: str) -> None:
    request = urllib.request.Request(
        f"{root_url}/_fake/faults", data=b'{"outage": true}', method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5):
        pass


def _agent(kubectl: Kubectl) -> dict[str, Any]:
    found = kubectl("get", "llmagent", AGENT, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else {}


def _results(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    found = kubectl("get", "configmap", f"{AGENT}-results-0", "-o", "json", check=False)
    data = (json.loads(found.stdout).get("data") or {}) if found.returncode == 0 else {}
    return {task: json.loads(value) for task, value in data.items()}


def quickstart_docs(
    text: str, *, fakes: dict[str, str], real: dict[str, str]
) -> list[dict[str, Any]]:
    """The quickstart's documents for this demo: each provider's base URL pointed at our
    fake of its protocol, or at the real service with the key from the environment."""
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    secret = next(d for d in docs if d["kind"] == "Secret")
    pool = next(d for d in docs if d["kind"] == "ProviderPool")
    providers = pool["spec"]["providers"]
    if "gemini" in real:
        providers.append({"name": "gemini", "type": "gemini", "model": "gemini-2.0-flash",
                          "secretRef": {"name": secret["metadata"]["name"], "key": "gemini"},
                          "priority": 15, "tier": "balanced",
                          "pricing": {"inputPerMillion": 0.1, "outputPerMillion": 0.4}})  # fmt: skip
    for provider in providers:
        kind = provider["type"]
        if kind in real:
            provider.pop("baseURL", None)  # the service's default URL
            secret["stringData"][provider["secretRef"]["key"]] = real[kind]
        elif kind in fakes:
            provider["baseURL"] = fakes[kind] + ("/v1" if kind == "openai" else "")
    return docs


def up(args: argparse.Namespace) -> int:
    demo = Demo(state_dir())
    demo.down()  # a fresh start: nothing of an earlier demo may linger, not even its logs
    for stale in (demo.logs, demo.state / "kubelet"):
        shutil.rmtree(stale, ignore_errors=True)
    real = {kind: os.environ[var] for kind, var in REAL_KEYS.items() if os.environ.get(var)}
    if real:
        print("real providers from the environment: " + ", ".join(sorted(real)))
    began = time.monotonic()
    try:
        demo.prepare_model()
        kubectl = demo.start_cluster()
        demo.start_fakes(real)
        operator_url = demo.install_operator()
        demo.apply_quickstart(real)
        completed = demo.watch(timeout=args.timeout)
    except (ClusterError, subprocess.CalledProcessError, AssertionError, OSError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(f"\ndemo failed: {error}\n{detail}", file=sys.stderr)
        _diagnostics(demo)
        return 1
    if not completed:
        print(f"\ndemo: the agent did not complete every task within {args.timeout:.0f} s",
              file=sys.stderr)  # fmt: skip
        print(kubectl("describe", "llmagent", AGENT, check=False).stdout, file=sys.stderr)
        _diagnostics(demo)
        return 1
    demo.report(operator_url)
    print(f"\ndemo finished in {time.monotonic() - began:.0f} s; it keeps running until "
          "`make demo-down`")  # fmt: skip
    return 0


def _diagnostics(demo: Demo) -> None:
    """The last lines of every log the demo's processes and pods wrote."""
    logs = [*sorted(demo.logs.glob("*.log")), *sorted((demo.state / "kubelet").rglob("*.log"))]
    for log in logs:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"--- {log}\n" + "\n".join(tail), file=sys.stderr)
    print("(stop everything with `make demo-down`)", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down"], help="Start the demo, or stop it.")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="Seconds the agent has to complete once applied.",
    )


def main(args: argparse.Namespace) -> int:
    if args.action == "down":
        Demo(state_dir()).down()
        return 0
    return up(args)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m tooling.demo", description=__doc__)
    _parser.add_argument("--log-level", default="INFO", help="Logging level.")
    add_arguments(_parser)
    _args = _parser.parse_args()
    logging.basicConfig(level=_args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    sys.exit(main(_args))
