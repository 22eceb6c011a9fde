"""A real Kubernetes control plane on loopback, started and stopped from Python.

Tests and ``make demo`` need an API server they can trust: the real ``kube-apiserver``
on a real ``etcd``, with ``kube-controller-manager`` (Deployments, ReplicaSets, garbage
collection, service accounts, namespaces), ``kube-scheduler``, and ``kwok`` keeping fake
nodes whose pods go to Running. ``hack/build-k8s.sh`` builds the binaries from pinned Go
modules; this module runs them.

Every listener binds 127.0.0.1. The service CIDR is allocated by the API server but
never dialled; kwok hands out pod IPs from a /16 inside 127.0.0.0/8 so that even a
client that does dial a pod IP stays on this machine (the process kubelet binds pods'
processes to exactly those addresses). A cluster is named: its state (certificates,
etcd data, logs, kubeconfig, pid file) lives in ``$LLMAGENTS_CLUSTER_DIR/<name>``
(default ``$LLMAGENTS_CACHE/cluster/<name>``, the cache being ``~/.cache/llmagents``), so
a demo cluster and test clusters run side by side. Only the standard library is used, so
``hack/cluster-up.sh`` runs on any ``python3``.

``real_node=True`` leaves kwok out for a real kubelet (``tooling.node``): then
the cluster must run in a network namespace of its own, where the API server listens on
port 443 of every address, the `kubernetes` Service's 10.96.0.1 included.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tooling import _proc
from tooling._admin_api import AdminApi, etcd_healthy, healthz
from tooling._components import (
    Layout,
    Ports,
    apiserver_args,
    choose_ports,
    cidrs_in_use,
    controller_manager_args,
    etcd_args,
    kwok_args,
    pod_cidr_for,
    scheduler_args,
    write_kubeconfigs,
)
from tooling._pki import Pki, ensure_pki

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


class ClusterError(RuntimeError):
    """The local control plane could not be built, started or reached."""


def cache_root() -> Path:
    """The development cache outside the repository (binaries, clusters, images):
    ``$LLMAGENTS_CACHE``, as the hack/ scripts and the Makefile read it, or
    ``~/.cache/llmagents``."""
    env = os.environ.get("LLMAGENTS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmagents"


def default_state_root() -> Path:
    """Where named clusters keep their state: ``$LLMAGENTS_CLUSTER_DIR`` or the cache's."""
    env = os.environ.get("LLMAGENTS_CLUSTER_DIR")
    return Path(env) if env else cache_root() / "cluster"


def find_bin_dir(*, build: bool = True) -> Path:
    """The directory holding the control-plane binaries, building missing ones if allowed.

    ``$LLMAGENTS_K8S_BIN`` wins; otherwise ``hack/build-k8s.sh`` (idempotent, fast when
    cached, needs the Go toolchain only when something is missing) is asked.
    """
    env = os.environ.get("LLMAGENTS_K8S_BIN")
    if env and (Path(env) / "kube-apiserver").exists():
        return Path(env)
    script = REPO_ROOT / "hack" / "build-k8s.sh"
    if not script.exists():
        raise ClusterError("set LLMAGENTS_K8S_BIN: hack/build-k8s.sh is not beside this package")
    result = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LLMAGENTS_K8S_NO_BUILD": "0" if build else "1"},
    )
    if result.returncode != 0:
        raise ClusterError(result.stderr.strip()[-4000:] or "hack/build-k8s.sh failed")
    return Path(result.stdout.strip().splitlines()[-1])


def kubectl_path(bin_dir: Path | None) -> str:
    """The kubectl to use: the one built beside the control plane, else the one on PATH."""
    if bin_dir is not None and (bin_dir / "kubectl").exists():
        return str(bin_dir / "kubectl")
    found = shutil.which("kubectl")
    if found is None:
        raise ClusterError("no kubectl: run LLMAGENTS_BUILD_KUBECTL=1 hack/build-k8s.sh")
    return found


class LocalCluster:
    """One named control plane: ``start()`` blocks until it is usable, ``stop()`` ends it.

    ``ephemeral`` clusters delete their state directory on stop (tests); named long-lived
    ones keep certificates and ports (``make cluster-up``). ``die_with_parent`` makes the
    kernel kill the components if the starting thread dies, so a crashed test session
    leaves nothing behind.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        state_root: Path | None = None,
        bin_dir: Path | None = None,
        ephemeral: bool = False,
        die_with_parent: bool = False,
        pki_dir: Path | None = None,
        real_node: bool = False,
    ) -> None:
        self.name = name
        self.dir = (state_root or default_state_root()) / name
        self._bin_dir = bin_dir
        self.ephemeral = ephemeral
        self.die_with_parent = die_with_parent
        self.pod_cidr = pod_cidr_for(name)
        self.ports: Ports | None = None
        # Clusters share one PKI by default: making keys costs seconds, reusing them nothing,
        # and a local CA has nothing to isolate.
        self._pki_dir = pki_dir or (state_root or default_state_root()) / "pki"
        # No kwok: a real kubelet joins (tooling.node); see Layout.real_node.
        self.real_node = real_node
        self._procs: list[subprocess.Popen[bytes]] = []
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}
        self._started = 0.0

    # -- paths -----------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (``O=system:masters``)."""
        return self.dir / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def pidfile(self) -> Path:
        return self.dir / "pids"

    @property
    def pki(self) -> Pki:
        return Pki(self._pki_dir)

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    @property
    def kubectl(self) -> str:
        return kubectl_path(self.bin_dir)

    @property
    def server(self) -> str:
        assert self.ports is not None, "cluster not started"
        return f"https://127.0.0.1:{self.ports.apiserver}"

    # -- lifecycle -------------------------------------------------------------------------
    def running(self) -> bool:
        """Whether this cluster's recorded processes are alive and its API server answers."""
        if not _proc.read_pids(self.pidfile) or not (self.dir / "ports.json").exists():
            return False
        self.ports = Ports(**json.loads((self.dir / "ports.json").read_text()))
        return self.api.get("/readyz", timeout=2) is not None

    def start(self, timeout: float = 120.0) -> None:
        """Start every component and wait until a pod could be scheduled and run."""
        started = self._started = time.monotonic()
        deadline = started + timeout
        bins = self.bin_dir
        # Leftovers of an earlier run of the same name would hold the ports and data.
        _proc.kill_recorded(self.pidfile)
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        self.logs.mkdir(exist_ok=True)
        pki = ensure_pki(self._pki_dir)
        self.ports = choose_ports(self.dir / "ports.json", real_node=self.real_node)
        write_kubeconfigs(self.dir, server=self.server, pki=pki, name=f"llmagents-{self.name}")
        self.pod_cidr = pod_cidr_for(self.name, cidrs_in_use(self.dir))
        (self.dir / "pod-cidr").write_text(self.pod_cidr)
        layout = Layout(
            self.name, self.dir, bins, pki, self.ports, self.pod_cidr, real_node=self.real_node
        )
        try:
            self._spawn("etcd", etcd_args(layout))
            self._wait("etcd", deadline, lambda: etcd_healthy(self.ports.etcd_client))
            self._spawn("kube-apiserver", apiserver_args(layout))
            # The controller manager and scheduler start while the API server bootstraps
            # (RBAC roles and the like take seconds), so their own start-up overlaps it.
            self._wait("kube-apiserver serving", deadline, self.api.answers)
            self._spawn("kube-controller-manager", controller_manager_args(layout))
            self._spawn("kube-scheduler", scheduler_args(layout))
            self._wait(
                "kube-apiserver", deadline, lambda: self.api.get("/readyz") is not None,
                tolerate={"kube-controller-manager"},
            )  # fmt: skip
            # It gives up when the API server is not healthy within 10 s of its start.
            if self._running["kube-controller-manager"].poll() is not None:
                logger.info("kube-controller-manager gave up waiting; starting it again")
                self._running.pop("kube-controller-manager")
                self._spawn("kube-controller-manager", self._argv["kube-controller-manager"])
            if not self.real_node:
                # kwok backs off exponentially while the API server is away: start it now.
                self._spawn("kwok", kwok_args(layout))
                self.api.create_node()
                self._wait("kwok node Ready", deadline, self.api.node_ready)
            self._wait("default service account", deadline, self.api.default_sa_exists)
            self._wait("kube-scheduler", deadline, lambda: healthz(self.ports.scheduler))
            self._wait(
                "kube-controller-manager",
                deadline,
                lambda: healthz(self.ports.controller_manager),
            )
        except BaseException:
            self.stop()
            raise
        logger.info(
            "cluster %s ready in %.1f s at %s (kubeconfig %s)",
            self.name, time.monotonic() - started, self.server, self.kubeconfig,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop every component (process groups, SIGTERM then SIGKILL)."""
        stopped = _proc.kill_recorded(self.pidfile)
        for proc in self._procs:  # reap our own children so no zombie is left
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("pid %d did not exit", proc.pid)
        self._procs.clear()
        self._running.clear()
        logger.info("cluster %s: stopped %d processes", self.name, stopped)
        if self.ephemeral:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- processes -------------------------------------------------------------------------
    # -- one component at a time (for tests of outages) ---------------------------------------
    COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

    def stop_component(self, name: str, *, kill: bool = False) -> None:
        """Stop one component: SIGKILL (a crash) when ``kill``, else SIGTERM and a grace period."""
        proc = self._running.pop(name, None)
        if proc is None:
            raise ClusterError(f"{name} is not running in cluster {self.name}")
        _proc.terminate_group(proc.pid, grace=0.0 if kill else 10.0, proc=proc)
        _proc.forget_pid(self.pidfile, proc.pid)

    def pause_component(self, name: str) -> None:
        """Stall one component (SIGSTOP): its connections stay open and nothing answers."""
        proc = self._running.get(name)
        if proc is None:
            raise ClusterError(f"{name} is not running in cluster {self.name}")
        _proc.signal_group(proc.pid, signal.SIGSTOP)

    def resume_component(self, name: str) -> None:
        """Let a stalled component go on (SIGCONT)."""
        proc = self._running.get(name)
        if proc is not None:
            _proc.signal_group(proc.pid, signal.SIGCONT)

    def start_component(self, name: str, *, timeout: float = 60.0) -> None:
        """Start a stopped component again, exactly as before, and wait until it is healthy."""
        if name in self._running:
            raise ClusterError(f"{name} is already running in cluster {self.name}")
        self._spawn(name, self._argv[name])
        checks: dict[str, Callable[[], bool]] = {
            "etcd": lambda: etcd_healthy(self.ports.etcd_client),
            "kube-apiserver": lambda: self.api.get("/readyz") is not None,
            "kube-controller-manager": lambda: healthz(self.ports.controller_manager),
            "kube-scheduler": lambda: healthz(self.ports.scheduler),
            "kwok": self.api.node_ready,
        }  # fmt: skip
        self._wait(name, time.monotonic() + timeout, checks[name])

    def _spawn(self, name: str, argv: list[str]) -> None:
        proc = _proc.spawn(
            argv, log_path=self.logs / f"{name}.log", die_with_parent=self.die_with_parent
        )
        self._procs.append(proc)
        self._running[name] = proc
        self._argv[name] = argv
        _proc.record_pid(self.pidfile, proc.pid, name)
        logger.debug("started %s (pid %d)", name, proc.pid)

    def _wait(
        self, what: str, deadline: float, ready: Callable[[], bool], *,
        tolerate: frozenset[str] | set[str] = frozenset(),
    ) -> None:  # fmt: skip
        """Poll ``ready`` until it holds; fail with the component's log tail at the deadline."""
        while True:
            try:
                if ready():
                    logger.debug("%s ready after %.1f s", what, time.monotonic() - self._started)
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} not ready in time\n{self._log_tails()}")
            dead = [
                n for n, proc in self._running.items()
                if proc.poll() is not None and n not in tolerate
            ]  # fmt: skip
            if dead:
                raise ClusterError(f"{', '.join(dead)} exited\n{self._log_tails()}")
            time.sleep(0.2)

    def _log_tails(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log}\n" + "\n".join(tail))
        return "\n".join(out)

    @property
    def api(self) -> AdminApi:
        """The API server as the admin, with the standard library alone (``_admin_api``)."""
        return AdminApi(self.server, self.pki)


@dataclass(frozen=True)
class ClusterInfo:
    """What a client needs to reach a cluster."""

    kubeconfig: Path
    kubectl: str  # path of the kubectl binary
    # The control plane when this process started it (None for LLMAGENTS_TEST_KUBECONFIG):
    # tests of outages stop and start its components.
    local: LocalCluster | None = None


class Kubectl:
    """kubectl bound to the cluster's kubeconfig and a namespace."""

    def __init__(self, exe: str, kubeconfig: Path, namespace: str) -> None:
        self.exe = exe
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS -n NAMESPACE``; raise with its stderr when ``check`` and it fails."""
        argv = [self.exe, f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        """Run kubectl with ``-o json`` and parse the output."""
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of a YAML or JSON manifest."""
        return self("apply", "-f", "-", input=manifest)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument("action", choices=["up", "down", "status", "kubeconfig"])
    parser.add_argument("--name", default=os.environ.get("LLMAGENTS_CLUSTER_NAME", "default"))
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cluster = LocalCluster(args.name)
    if args.action == "kubeconfig":
        print(cluster.kubeconfig)
        return 0
    if args.action == "status":
        up = cluster.running()
        print(f"cluster {args.name}: {'running at ' + cluster.server if up else 'not running'}")
        return 0 if up else 1
    if args.action == "down":
        cluster.stop()
        return 0
    if cluster.running():
        print(f"cluster {args.name} already running at {cluster.server}")
    else:
        try:
            cluster.start(timeout=args.timeout)
        except ClusterError as exc:
            print(f"cluster-up failed: {exc}", file=sys.stderr)
            return 1
    kubectl = cluster.kubectl
    kubectl = "kubectl" if shutil.which("kubectl") == kubectl else kubectl
    print(f"\nexport KUBECONFIG={cluster.kubeconfig}; {kubectl} get nodes")
    print(f"(logs in {cluster.logs}; stop with `make cluster-down`)")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
