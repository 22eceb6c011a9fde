"""The real node's configuration (tooling/_nodeconfig.py), read as its programs
read it: what this machine class needs is there, and nothing reaches off the machine; and
hack/e2e.sh's refusal where no node can run (a skip locally, a failure under CI)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path

import pytest

from tooling import _components, _node_teardown, _proc
from tooling._node_teardown import CGROUP_FS
from tooling._nodeconfig import (
    GATEWAY,
    POD_SUBNET,
    SERVICE_IP,
    NodeLayout,
    cni_conflist,
    containerd_config,
    kubelet_args,
    kubelet_config,
)
from tooling.cluster import REPO_ROOT
from tooling.node import missing_prerequisites

LAYOUT = NodeLayout(
    dir=Path("/state/node"), bins=Path("/bins"), ca_cert=Path("/pki/ca.crt"),
    cgroup_root="/llmagents-node-test", kubelet_port=40001, kubelet_healthz_port=40002,
)  # fmt: skip


def test_containerd_keeps_everything_under_the_node_and_restricts_oom_score_adj():
    config = tomllib.loads(containerd_config(LAYOUT))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    # Without it every sandbox fails here: CAP_SYS_RESOURCE is withheld from runc.
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    paths = [config["root"], config["state"], config["grpc"]["address"],
             config["ttrpc"]["address"], cri["cni"]["conf_dir"],
             config["plugins"]["io.containerd.internal.v1.opt"]["path"]]  # fmt: skip
    assert all(p.startswith("/state/node/") for p in paths), paths


def test_the_pod_network_is_a_bridge_without_nat_on_the_gateway():
    (bridge,) = json.loads(cni_conflist(LAYOUT))["plugins"]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False
    (pod_range,) = bridge["ipam"]["ranges"][0]
    assert pod_range == {"subnet": POD_SUBNET, "gateway": GATEWAY}
    # The Service address pods dial for in-cluster configuration is the first of the CIDR.
    assert SERVICE_IP == _components.SERVICE_CIDR.replace("0.0/16", "0.1")


def test_the_kubelet_runs_on_cgroup_v1_with_webhook_auth_in_the_node_s_directories():
    config = json.loads(kubelet_config(LAYOUT))
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == "/llmagents-node-test"
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0 and config["address"] == GATEWAY
    assert config["containerRuntimeEndpoint"] == "unix:///state/node/containerd/containerd.sock"
    args = kubelet_args(LAYOUT, Path("/state/node/kubelet.kubeconfig"))
    assert "--root-dir=/state/node/kubelet" in args and f"--node-ip={GATEWAY}" in args


def test_a_node_outside_a_namespace_of_its_own_is_refused(monkeypatch):
    monkeypatch.delenv("LLMAGENTS_NODE_NETNS", raising=False)
    assert any("network namespace of its own" in m for m in missing_prerequisites())


def _e2e_as_nobody(ci: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "CI": ci}
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "bash", str(REPO_ROOT / "hack" / "e2e.sh")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="needs root and setpriv to run the script as another user")  # fmt: skip
def test_make_e2e_skips_without_root_but_fails_under_ci():
    local = _e2e_as_nobody("")
    assert local.returncode == 0, local.stderr
    assert local.stdout.startswith("e2e: skipped: ") and "root" in local.stdout
    ci = _e2e_as_nobody("true")
    assert ci.returncode == 1 and "cannot run under CI" in ci.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not (CGROUP_FS / "pids").is_dir(),
                    reason="needs root and the cgroup v1 pids hierarchy")  # fmt: skip
def test_cleanup_removes_the_node_cgroups_of_ended_runs_only():
    # Two runs' subtrees, as RealNode names them: one of this live process (a `make e2e`
    # going on in another worktree) and one whose pytest has exited (a killed run).
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    live = CGROUP_FS / "pids" / f"llmagents-node-e2e-{os.getpid()}"
    dead = CGROUP_FS / "pids" / f"llmagents-node-e2e-{dead_pid.pid}"
    for path in (live, dead):
        (path / "runtime").mkdir(parents=True)
    try:
        _node_teardown.cleanup()
        assert live.is_dir() and (live / "runtime").is_dir()
        assert not dead.exists()
    finally:
        for path in (live / "runtime", live, dead / "runtime", dead):
            if path.is_dir():
                path.rmdir()


def _path_without(tmp_path: Path, *absent: str) -> str:
    """A PATH of one directory linking every program on this PATH but ``absent``: this
    machine as it would be without them, nothing uninstalled."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else ():
            link = bin_dir / program.name
            if program.name not in absent and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(bin_dir)


@pytest.mark.skipif(os.geteuid() != 0 or not (CGROUP_FS / "memory").is_dir(),
                    reason="the prerequisites are checked after root and cgroup v1")  # fmt: skip
@pytest.mark.parametrize(
    ("absent", "reason"),
    [
        # No engine running, none installed and no apt to install one (a machine that is
        # not Debian): nothing to build the image with.
        (("docker", "dockerd", "apt-get"), "a container engine"),
        (("containerd", "apt-get"), "containerd"),
    ],
)
def test_make_e2e_without_a_container_engine_skips_but_fails_under_ci(tmp_path, absent, reason):
    # Whatever else this machine lacks (a fresh one has no containerd, runc or CNI plugins
    # before the first `make e2e` installs them), the skip names all of it, this included.
    path = _path_without(tmp_path, *absent)

    def e2e(ci: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": path, "HOME": str(tmp_path), "LLMAGENTS_CACHE": str(tmp_path / "cache"),
               "CI": ci}  # fmt: skip
        return subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "e2e.sh")],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip

    local = e2e("")
    assert local.returncode == 0, local.stderr
    skipped = re.fullmatch(r"e2e: skipped: missing (.*) \(no apt-get to install them\)\n",
                           local.stdout)  # fmt: skip
    assert skipped and reason in skipped.group(1).split(", "), local.stdout + local.stderr
    ci = e2e("true")
    assert ci.returncode == 1, ci.stdout + ci.stderr
    assert f"cannot run under CI: missing {skipped.group(1)}" in ci.stderr


def test_an_engine_another_run_uses_is_not_stopped_under_it(tmp_path):
    # hack/docker-engine.sh's own engine, stood in for by a process it would stop (not our
    # child, so that it is reaped when it ends, as dockerd is), and another run (a build, an
    # e2e run in another worktree) holding the users' lock.
    state = tmp_path / "docker"
    state.mkdir()
    started = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    engine = int(started.stdout)
    (state / "dockerd.pid").write_text(str(engine))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LLMAGENTS_CACHE": str(tmp_path)}

    def stop_unused() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "docker-engine.sh"), "stop-unused"],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip

    try:
        with open(state / "users.lock", "a") as other_run:
            fcntl.flock(other_run, fcntl.LOCK_SH)
            kept = stop_unused()
            assert kept.returncode == 0, kept.stderr
            assert "another build or e2e run uses it" in kept.stderr
            assert _proc.alive(engine)
        stopped = stop_unused()  # the other run has ended
        assert stopped.returncode == 0, stopped.stderr
        assert not _proc.alive(engine)
        assert not (state / "dockerd.pid").exists()
    finally:
        if _proc.alive(engine):
            os.kill(engine, signal.SIGKILL)
