"""A real node's configuration files: containerd, CNI and kubelet, as pure functions.

``RealNode`` (``tooling/node.py``) decides when to run what; this module says
how each part is configured for this machine class and why. Everything a node writes
lives under its state directory; the only shared kernel state it touches is a cgroup
subtree of its own (``cgroup_root``) and the network namespace it runs in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "llmagents-node"  # the `node` client certificate's CN names it (_pki.CLIENTS)
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"  # the bridge's address: the node IP, and the pods' default route
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of _components.SERVICE_CIDR
BRIDGE = "llmcni0"
PAUSE_IMAGE = "llmagents.local/pause:e2e"


@dataclass(frozen=True)
class NodeLayout:
    """Where one node's files live, what it runs, and the ports its kubelet owns."""

    dir: Path
    bins: Path  # kubelet and pause (hack/build-node.sh)
    ca_cert: Path
    cgroup_root: str  # e.g. /llmagents-node-e2e: every pod and the runtime live below it
    kubelet_port: int
    kubelet_healthz_port: int

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.dir / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"


def containerd_config(n: NodeLayout) -> str:
    """containerd 1.6 (Debian's) with only the CRI it needs, on its own socket and root.

    ``restrict_oom_score_adj``: this machine withholds CAP_SYS_RESOURCE, so runc cannot
    lower a sandbox's oom_score_adj to the kubelet's -998 and every sandbox would fail with
    "can't get final child's PID from pipe"; restricted, it keeps the runtime's own value.
    ``netns_mounts_under_state_dir``: pods' network namespaces are pinned under this node's
    state directory, not in the machine's /run/netns.
    """
    d = n.dir / "containerd"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{n.containerd_socket}"

[ttrpc]
  address = "{n.containerd_socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{n.dir / "cni" / "net.d"}"
"""


def cni_conflist(n: NodeLayout) -> str:
    """A bridge with the node's gateway address; pods get a default route through it.

    No ``ipMasq`` and no portmap: nothing is NATed, so a pod reaches this namespace's
    addresses (the API server, fake providers) and nothing beyond it. containerd adds the
    pod's loopback itself.
    """
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "llmagents-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "isDefaultGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                        "dataDir": str(n.dir / "cni" / "ipam"),
                    },
                }
            ],
        },
        indent=2,
    )


def kubelet_config(n: NodeLayout) -> str:
    """KubeletConfiguration for cgroup v1 with cgroupfs, as this machine mounts them.

    Kubernetes 1.35+ refuses cgroup v1 unless ``failCgroupV1: false``. Authentication and
    authorization are the production ones (client certificates from the cluster CA,
    webhook to the API server), so `kubectl logs` goes through them. Eviction and image
    garbage collection thresholds are low: the machine's disk is shared with other jobs and
    a node that evicts the pods under test proves nothing.
    """
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": n.cgroup_root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{n.containerd_socket}",
        "address": GATEWAY,
        "port": n.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": n.kubelet_healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(n.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "podLogsDir": str(n.pod_logs),
        "volumePluginDir": str(n.dir / "volume-plugins"),
        "resolvConf": "",
        "registerNode": True,
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "enableServer": True,
    }
    return json.dumps(config, indent=2)


def kubelet_args(n: NodeLayout, kubeconfig: Path) -> list[str]:
    return [
        str(n.bins / "kubelet"),
        f"--config={n.dir / 'kubelet.json'}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={n.kubelet_root}",
        f"--cert-dir={n.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={GATEWAY}",
        "--v=1",
    ]


def pause_dockerfile() -> str:
    """The sandbox image: hack/k8s/cmd/pause alone (no registry serves registry.k8s.io/pause)."""
    return 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
