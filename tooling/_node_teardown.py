"""Ending what a real node leaves in the machine's shared state: the processes and cgroups
of its cgroup subtree and the mounts under its directory (``RealNode.stop``), and the
subtrees of runs that were killed before they could stop (``cleanup``, which ``hack/e2e.sh``
runs as ``python -m tooling.node cleanup``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from tooling import _proc

logger = logging.getLogger(__name__)

CGROUP_FS = Path("/sys/fs/cgroup")


def kill_cgroup_tree(cgroup_root: str, timeout: float = 30.0) -> None:
    """SIGKILL every process in the node's subtree (runtime, shims, containers) until
    none is left."""
    began = time.monotonic()
    deadline = began + timeout
    while time.monotonic() < deadline:
        pids = _pids_in(CGROUP_FS / "pids" / cgroup_root.lstrip("/"))
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    logger.warning("processes left in cgroup %s after %.0f s", cgroup_root, timeout)


def unmount_under(directory: Path) -> None:
    """Mounts under ``directory``, deepest first (the kubelet's root bind mount, the
    sandboxes' shm, overlay rootfs, pinned netns): lazily detached."""
    prefix = str(directory.resolve()) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if (point + "/").startswith(prefix):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def remove_cgroups(cgroup_root: str) -> None:
    for hierarchy in cgroup_hierarchies(unified=True):
        root = hierarchy / cgroup_root.lstrip("/")
        if not root.is_dir():
            continue
        below = [p for p in root.rglob("*") if p.is_dir()]
        for path in [*sorted(below, key=lambda p: len(p.parts), reverse=True), root]:
            try:
                path.rmdir()
            except OSError as err:
                logger.warning("cgroup %s not removed: %s", path, err)


def cgroup_hierarchies(*, unified: bool = False) -> list[Path]:
    """The cgroup v1 hierarchies mounted under /sys/fs/cgroup (one per controller), and
    with ``unified`` the cgroup2 one beside them, where runc adds its cgroups too."""
    kinds = {"cgroup", "cgroup2"} if unified else {"cgroup"}
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in kinds and fields[4].startswith(str(CGROUP_FS) + "/"):
            points.append(Path(fields[4]))
    return sorted(points)


def _pids_in(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    if not cgroup.is_dir():
        return pids
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            continue
    return pids


def _run_alive(cgroup_name: str) -> bool:
    """Whether the run owning ``llmagents-node-<cluster>`` is alive: its cluster's name ends
    in the pid of the process that started it (``e2e-<pid>``)."""
    _, _, suffix = cgroup_name.rpartition("-")
    return suffix.isdigit() and _proc.alive(int(suffix))


def cleanup() -> int:
    """End what a killed run left: processes in, and the cgroups of, every node subtree
    (``/llmagents-node-*``) whose run is over. Mounts and addresses lived in the run's own
    namespaces, which vanish with their last process. Returns how many subtrees were removed.

    A subtree is named after its cluster, ``e2e-<pid of the run's pytest>`` (tests/e2e):
    one whose pytest still lives belongs to a run going on beside this one (another
    worktree's `make e2e`) and is left alone."""
    roots = {
        "/" + path.name
        for hierarchy in cgroup_hierarchies(unified=True)
        for path in hierarchy.glob("llmagents-node-*")
        if path.is_dir() and not _run_alive(path.name)
    }
    for root in sorted(roots):
        logger.warning("removing the leftover node cgroup %s and its processes", root)
        kill_cgroup_tree(root)
        remove_cgroups(root)
    return len(roots)
