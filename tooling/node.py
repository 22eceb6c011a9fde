"""A real node for the local control plane: containerd, runc, CNI and a real kubelet.

The process kubelet (``kubelet.py``) runs our containers as local processes; this node
runs them as containers from the image built by ``make image``, so the Dockerfile, the
chart's securityContext, probes, volumes, resource limits, in-cluster configuration and
pod networking are exercised together (``make e2e``, tests/e2e).

What runs, all from Debian packages or Go modules, nothing pulled from a registry:

- containerd 1.6 (Debian's) with its CRI on a socket and root under the node's state
  directory, runc, and the bridge/host-local CNI plugins; the sandbox ("pause") image is
  built here from ``hack/k8s/cmd/pause`` and images are loaded with ``ctr images import``;
- the kubelet built from the same ``k8s.io/kubernetes`` version as the API server
  (``hack/build-node.sh``), cgroupfs on this machine's cgroup v1, registered as
  ``llmagents-node`` with a client certificate the Node authorizer knows.

The node must run in a network and mount namespace of its own (``hack/e2e.sh`` starts the
tests under ``unshare --net --mount``): its bridge, the pods' addresses and the
`kubernetes` Service address (10.96.0.1 on loopback, where the API server listens on port
443) exist only there, nothing is NATed, and every mount the kubelet and containerd make
disappears with that namespace even if the run is killed. The one piece of shared kernel
state is a cgroup subtree of its own, which ``stop`` empties and removes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tooling import _proc
from tooling._components import b64, free_port, kubeconfig_text
from tooling._node_teardown import (
    CGROUP_FS,
    cgroup_hierarchies,
    cleanup,
    kill_cgroup_tree,
    remove_cgroups,
    unmount_under,
)
from tooling._nodeconfig import (
    BRIDGE,
    GATEWAY,
    NODE_NAME,
    PAUSE_IMAGE,
    POD_SUBNET,
    SERVICE_IP,
    NodeLayout,
    cni_conflist,
    containerd_config,
    kubelet_args,
    kubelet_config,
    pause_dockerfile,
)
from tooling.cluster import REPO_ROOT, LocalCluster

logger = logging.getLogger(__name__)

NETNS_ENV = "LLMAGENTS_NODE_NETNS"  # set by hack/e2e.sh inside its unshared namespaces


class NodeUnavailable(RuntimeError):
    """This machine cannot run a real node; the message says what is missing."""


class NodeError(RuntimeError):
    """The node did not start or misbehaved; the message carries the logs' tails."""


NODE_CPU_SHARES = 8 * 1024
"""The node's cgroup weight (v1 ``cpu.shares``). By default the subtree, which holds the
kubelet, containerd and every pod, weighs as much as one busy process of the machine's
own: with other jobs at load average 9 the whole node got about a tenth of the CPU, its
operator a few percent of a core, and the operator's requests took 20-60 s to be sent and
read, so it missed its Lease's renew deadline and restarted (docs/e2e.md). Weighted as
eight busy processes the node gets about half of the machine at that load, as a node has
its machine's cores; on an idle machine the weight changes nothing."""


def missing_prerequisites() -> list[str]:
    """What this machine lacks for a real node (empty: it can run one)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("containerd", "runc", "ctr", "docker", "ip"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("CNI plugins (Debian's containernetworking-plugins)")
    if not (CGROUP_FS / "memory").is_dir():
        missing.append("cgroup v1 memory controller at /sys/fs/cgroup/memory")
    if os.environ.get(NETNS_ENV) != "1":
        missing.append(f"a network namespace of its own ({NETNS_ENV}=1; run it with make e2e)")
    return missing


def find_node_bins() -> Path:
    """kubelet and pause, built by hack/build-node.sh (cached; minutes the first time)."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "build-node.sh")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise NodeError(result.stderr.strip()[-4000:] or "hack/build-node.sh failed")
    return Path(result.stdout.strip().splitlines()[-1])


class RealNode:
    """One node joined to ``cluster`` (started with ``real_node=True``)."""

    def __init__(self, cluster: LocalCluster, *, bins: Path | None = None) -> None:
        self.cluster = cluster
        self.dir = cluster.dir / "node"
        self._bins = bins
        self.layout: NodeLayout | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, images: Sequence[str], timeout: float = 180.0) -> None:
        """Network, runtime, images, kubelet; returns once the node is Ready and untainted."""
        if missing := missing_prerequisites():
            raise NodeUnavailable("cannot run a real node here: needs " + ", ".join(missing))
        began = time.monotonic()
        deadline = began + timeout
        bins = self._bins or find_node_bins()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.layout = n = NodeLayout(
            dir=self.dir, bins=bins, ca_cert=self.cluster.pki.ca_cert,
            cgroup_root=f"/llmagents-node-{self.cluster.name}",
            kubelet_port=free_port(), kubelet_healthz_port=free_port(),
        )  # fmt: skip
        try:
            self._network()
            self._cgroups()
            self._write_configs(n)
            self._spawn("containerd", ["containerd", "--config", str(self.dir / "containerd.toml")])
            self._wait("containerd", deadline, n.containerd_socket.exists)
            self._wait("containerd's CRI", deadline, lambda: self.ctr("version").returncode == 0)
            self.load_images([*images, self._pause_image()])
            self._spawn("kubelet", kubelet_args(n, self.dir / "kubelet.kubeconfig"))
            self._wait("the node to register and be Ready", deadline, self._ready)
            # Admission taints a new node not-ready; the node-lifecycle controller, which
            # would lift it, does not run in the local control plane.
            self.cluster.api.request(
                "PATCH", f"/api/v1/nodes/{NODE_NAME}", {"spec": {"taints": None}},
                content_type="application/merge-patch+json",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        logger.info("node %s ready in %.0f s (state %s)", NODE_NAME, time.monotonic() - began,
                    self.dir)  # fmt: skip

    def stop(self) -> None:
        """Kubelet, pods, runtime, mounts and cgroups: everything start made, failure or not."""
        kubelet = self._procs.pop("kubelet", None)
        if kubelet is not None:
            _proc.terminate_group(kubelet.pid, grace=10.0, proc=kubelet)
        if self.layout is not None:
            kill_cgroup_tree(self.layout.cgroup_root)
        for proc in self._procs.values():
            _proc.terminate_group(proc.pid, grace=5.0, proc=proc)
        self._procs.clear()
        unmount_under(self.dir)
        if self.layout is not None:
            remove_cgroups(self.layout.cgroup_root)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- what tests use ----------------------------------------------------------------------
    def ctr(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """containerd's own CLI on this node's socket, in the CRI's namespace."""
        assert self.layout is not None
        return subprocess.run(
            ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args],
            input=input, capture_output=True, check=False, timeout=600,
        )  # fmt: skip

    def load_images(self, images: Sequence[str]) -> None:
        """``docker save`` from the engine that built them, ``ctr images import`` here."""
        assert self.layout is not None, "start the node first"
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        assert save.stdout is not None
        imported = subprocess.run(
            ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io",
             "images", "import", "-"],
            stdin=save.stdout, capture_output=True, check=False, timeout=900,
        )  # fmt: skip
        save.stdout.close()
        if save.wait() != 0 or imported.returncode != 0:
            raise NodeError(f"loading {images} failed: {imported.stderr.decode()[-2000:]}")

    def kill_container(self, container_id: str, sig: str = "SIGKILL") -> None:
        """Signal a container's process through the runtime (as the OOM killer or a crash)."""
        task = container_id.removeprefix("containerd://")
        result = self.ctr("tasks", "kill", "--signal", sig, task)
        if result.returncode != 0:
            raise NodeError(f"ctr tasks kill {container_id}: {result.stderr.decode().strip()}")

    def logs(self) -> dict[str, Path]:
        return {name: self.dir / "logs" / f"{name}.log" for name in ("containerd", "kubelet")}

    def log_tails(self, lines: int = 30) -> str:
        out = []
        for name, path in self.logs().items():
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name} ({path})\n" + "\n".join(tail))
        return "\n".join(out)

    # -- set-up ------------------------------------------------------------------------------
    def _network(self) -> None:
        """The pods' bridge (its address is the node IP) and the Service address on loopback."""
        for cmd in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "replace", f"{SERVICE_IP}/32", "dev", "lo"],
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", f"{GATEWAY}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0 and "File exists" not in result.stderr:
                raise NodeError(f"{' '.join(cmd)}: {result.stderr.strip()}")

    def _cgroups(self) -> None:
        assert self.layout is not None
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / self.layout.cgroup_root.lstrip("/")
            runtime = root / "runtime"
            runtime.mkdir(parents=True, exist_ok=True)
            if hierarchy.name == "cpuset":  # a v1 cpuset cgroup holds no task until set
                for path in (root, runtime):
                    for key in ("cpuset.cpus", "cpuset.mems"):
                        (path / key).write_text((path.parent / key).read_text())
            if (root / "cpu.shares").is_file():
                (root / "cpu.shares").write_text(str(NODE_CPU_SHARES))

    def _write_configs(self, n: NodeLayout) -> None:
        (self.dir / "containerd.toml").write_text(containerd_config(n))
        (self.dir / "cni" / "net.d").mkdir(parents=True)
        (self.dir / "cni" / "net.d" / "10-llmagents.conflist").write_text(cni_conflist(n))
        (self.dir / "kubelet.json").write_text(kubelet_config(n))
        pki = self.cluster.pki
        cert = pki.client("node")
        kubeconfig = self.dir / "kubelet.kubeconfig"
        kubeconfig.write_text(
            kubeconfig_text(
                server=self.cluster.server,
                ca_pem=pki.ca_cert.read_bytes(),
                name="llmagents",
                user={
                    "client-certificate-data": b64(cert.cert.read_bytes()),
                    "client-key-data": b64(cert.key.read_bytes()),
                },
            )
        )
        kubeconfig.chmod(0o600)

    def _pause_image(self) -> str:
        assert self.layout is not None
        context = self.dir / "pause-image"
        context.mkdir()
        shutil.copy2(self.layout.bins / "pause", context / "pause")
        (context / "Dockerfile").write_text(pause_dockerfile())
        result = subprocess.run(
            ["docker", "build", "-q", "-t", PAUSE_IMAGE, str(context)],
            capture_output=True, text=True, check=False, timeout=300,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
        if result.returncode != 0:
            raise NodeError(f"building {PAUSE_IMAGE}: {result.stderr.strip()[-2000:]}")
        return PAUSE_IMAGE

    def _spawn(self, name: str, argv: list[str]) -> None:
        """Start a node process inside the node's `runtime` cgroup (its children follow)."""
        assert self.layout is not None
        procs_files = [
            str(h / self.layout.cgroup_root.lstrip("/") / "runtime" / "cgroup.procs")
            for h in cgroup_hierarchies()
        ]
        # The shell joins the cgroup and then becomes the program, so no child of it (the
        # containerd shims, the containers) can start outside the subtree stop() empties.
        script = 'for f in "$@"; do echo $$ > "$f"; done; exec ' + " ".join(
            _sh_quote(a) for a in argv
        )
        proc = _proc.spawn(
            ["sh", "-c", script, "sh", *procs_files], log_path=self.dir / "logs" / f"{name}.log"
        )
        self._procs[name] = proc

    def _wait(self, what: str, deadline: float, ready: Any) -> None:
        while True:
            try:
                if ready():
                    return
            except (OSError, ValueError, KeyError, subprocess.SubprocessError):
                pass
            dead = [name for name, proc in self._procs.items() if proc.poll() is not None]
            if dead:
                raise NodeError(
                    f"{', '.join(dead)} exited while waiting for {what}\n{self.log_tails()}"
                )
            if time.monotonic() > deadline:
                raise NodeError(f"{what}: not within the deadline\n{self.log_tails()}")
            time.sleep(0.5)

    def _ready(self) -> bool:
        node = self.cluster.api.get(f"/api/v1/nodes/{NODE_NAME}")
        if not isinstance(node, dict):
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _sh_quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if sys.argv[1:] != ["cleanup"]:
        sys.exit("usage: python -m tooling.node cleanup")
    cleanup()
