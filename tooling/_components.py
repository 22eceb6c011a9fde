"""The control-plane components' command lines, and the objects a fresh cluster needs.

Pure functions of a :class:`Layout` (where a cluster's files live, which ports it owns):
``LocalCluster`` decides when to run what, this module says how each component is
configured and why; and the few files a cluster keeps for that (its ports, its pod CIDR
beside the others', the components' kubeconfigs).
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
from base64 import b64encode
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tooling import _proc
from tooling._pki import Pki

NODE_NAME = "kwok-node-0"
SERVICE_CIDR = "10.96.0.0/16"  # allocated, never connected to
# Controllers a workload needs here. Node-IPAM, node lifecycle, cloud and CSR signing
# controllers are left out: kwok keeps the nodes, and nothing here issues certificates.
CONTROLLERS = (
    "deployment-controller,replicaset-controller,garbage-collector-controller,"
    "serviceaccount-controller,serviceaccount-token-controller,namespace-controller,"
    "root-ca-certificate-publisher-controller,job-controller,cronjob-controller,"
    "statefulset-controller,daemonset-controller,pod-garbage-collector-controller,"
    "ttl-after-finished-controller,resourcequota-controller,disruption-controller,"
    "endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller,"
    "clusterrole-aggregation-controller,service-cidr-controller"
)


@dataclass
class Ports:
    """The loopback ports one cluster listens on."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def free_port() -> int:
    """A loopback port free now, for a child process to listen on.

    Chosen outside the range the kernel hands out to outgoing connections: a port found
    free by binding port 0 comes from that range, and any client socket of this busy
    machine (the suite's workers make thousands) could take it before the child binds it
    (seen: an operator's probe port taken between the choice and its bind).
    """
    ephemeral = _ephemeral_ports()
    below = range(10000, min(ephemeral.start, 65536))
    above = range(max(ephemeral.stop, 10000), 65536)
    pool = below if len(below) >= len(above) else above
    for _ in range(1000):
        port = random.choice(pool)
        if port_free(port):
            return port
    raise RuntimeError(f"no free loopback port in {pool.start}-{pool.stop - 1}")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pod_cidr_for(name: str, taken: AbstractSet[str] = frozenset()) -> str:
    """A /16 of 127.0.0.0/8 for this cluster's pod IPs: derived from its name, not ``taken``.

    Clusters running at once must not hand out the same pod IPs, or their pods' processes
    would bind the same addresses.
    """
    first = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 150
    for step in range(150):
        cidr = f"127.{100 + (first + step) % 150}.0.0/16"
        if cidr not in taken:
            return cidr
    raise RuntimeError("no free pod CIDR in 127.100.0.0-127.249.255.255")


def cidrs_in_use(state_dir: Path) -> set[str]:
    """Pod CIDRs of the other clusters under the same state root that are running."""
    used = set()
    for other in state_dir.parent.glob("*/pod-cidr"):
        if other.parent != state_dir and _proc.read_pids(other.parent / "pids"):
            used.add(other.read_text().strip())
    return used


def choose_ports(saved: Path, *, real_node: bool) -> Ports:
    """Reuse the ports a named cluster had (stable URLs, kept in ``saved``), else pick free
    ones."""
    if saved.exists():
        ports = Ports(**json.loads(saved.read_text()))
        if all(port_free(p) for p in asdict(ports).values()):
            return ports
    chosen: set[int] = set()
    while len(chosen) < 6:
        chosen.add(free_port())
    ports = Ports(*sorted(chosen))
    if real_node:  # the `kubernetes` Service's port (see Layout.real_node)
        ports.apiserver = 443
    saved.write_text(json.dumps(asdict(ports)))
    return ports


@dataclass(frozen=True)
class Layout:
    """One cluster's name, files, binaries, credentials and ports."""

    name: str
    dir: Path
    bins: Path
    pki: Pki
    ports: Ports
    pod_cidr: str
    # A real kubelet (tooling.node) instead of kwok, in a network namespace of
    # its own: the API server then listens on every address of that namespace, port 443,
    # so that pods reach it at the `kubernetes` Service's address (10.96.0.1 on its
    # loopback) without a proxy or NAT.
    real_node: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"


def etcd_args(c: Layout) -> list[str]:
    p, bins = c.ports, c.bins
    peer = f"http://127.0.0.1:{p.etcd_peer}"
    client = f"http://127.0.0.1:{p.etcd_client}"
    return [
        str(bins / "etcd"),
        f"--name={c.name}",
        f"--data-dir={c.dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={c.name}={peer}",
        # Test data is thrown away at every start; fsync would only slow the suite.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(c: Layout) -> list[str]:
    p, bins, pki = c.ports, c.bins, c.pki
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
        f"--bind-address={'0.0.0.0' if c.real_node else '127.0.0.1'}",
        "--advertise-address=127.0.0.1",
        f"--secure-port={p.apiserver}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # The `kubernetes` Service would list 127.0.0.1 as an endpoint; nobody should
        # reach the API through a Service here, so it gets none. (A real node's pods dial
        # the Service address, which is a local address of their node: no endpoint needed.)
        "--endpoint-reconciler-type=none",
        # Node: a real kubelet may read exactly what its pods need (kwok never asks).
        "--authorization-mode=Node,RBAC",
        f"--kubelet-client-certificate={pki.client('kubelet-client').cert}",
        f"--kubelet-client-key={pki.client('kubelet-client').key}",
        # A node's name resolves nowhere here; its InternalIP does.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--client-ca-file={pki.ca_cert}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        # Request-header authentication for aggregated API servers; without it every
        # component logs that the extension-apiserver-authentication CA is missing.
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.client('front-proxy-client').cert}",
        f"--proxy-client-key-file={pki.client('front-proxy-client').key}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=0",
    ]


def controller_manager_args(c: Layout) -> list[str]:
    p, bins, pki = c.ports, c.bins, c.pki
    kubeconfig = c.dir / "controller-manager.kubeconfig"
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={p.controller_manager}",
        "--leader-elect=false",
        f"--controllers={CONTROLLERS}",
        # Each controller acts as its own service account, so RBAC is exercised for real.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--profiling=false",
        "--v=0",
    ]


def scheduler_args(c: Layout) -> list[str]:
    p, bins = c.ports, c.bins
    kubeconfig = c.dir / "scheduler.kubeconfig"
    return [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={p.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=0",
    ]


def kwok_args(c: Layout) -> list[str]:
    p, bins = c.ports, c.bins
    return [
        str(bins / "kwok"),
        f"--kubeconfig={c.kubeconfig}",
        # Stages (how nodes and pods progress) from the pinned kwok module; see build-k8s.sh.
        f"--config={bins / 'kwok-stages.yaml'}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={c.pod_cidr}",
        # Node addresses are loopback too: a stray `kubectl logs` dials this machine.
        "--node-ip=127.0.0.1",
        f"--server-address=127.0.0.1:{p.kwok}",
    ]


def node_manifest() -> dict[str, Any]:
    """The fake node kwok keeps: no taint, so any workload lands there."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": NODE_NAME,
                "type": "kwok",
            },
        },
        "status": {
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def b64(data: bytes) -> str:
    return b64encode(data).decode()


def kubeconfig_text(*, server: str, ca_pem: bytes, name: str, user: dict[str, str]) -> str:
    """A one-context kubeconfig (JSON, which every YAML loader reads)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return json.dumps(config, indent=2) + "\n"


def write_kubeconfigs(state_dir: Path, *, server: str, pki: Pki, name: str) -> None:
    """The kubeconfigs of the admin (``kubeconfig``), the controller manager and the
    scheduler, each with its own client certificate."""
    for user, path in (
        ("admin", state_dir / "kubeconfig"),
        ("controller-manager", state_dir / "controller-manager.kubeconfig"),
        ("scheduler", state_dir / "scheduler.kubeconfig"),
    ):
        cert = pki.client(user)
        path.write_text(
            kubeconfig_text(
                server=server,
                ca_pem=pki.ca_cert.read_bytes(),
                name=name,
                user={
                    "client-certificate-data": b64(cert.cert.read_bytes()),
                    "client-key-data": b64(cert.key.read_bytes()),
                },
            )
        )
        path.chmod(0o600)
