"""Child processes that never outlive the harness.

The control plane and the process kubelet both start long-running children. Each child
gets its own process group (so its own children die with it), optionally dies with the
thread that started it (``PR_SET_PDEATHSIG``, for pytest sessions that crash), and is
stopped the way a kubelet stops a container: SIGTERM to the group, a grace period, then
SIGKILL. Pid files let a later ``cluster-down`` find processes a previous run left.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Loaded here, not in the child: between fork and exec only the prctl call itself runs,
# which takes no lock another thread could have held at fork time.
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent goes."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``.

    ``die_with_parent`` ties the child to the calling *thread*: call it from a thread that
    lives as long as the child should.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        # Not a group leader we own; signal the process alone.
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def terminate_group(pid: int, *, grace: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group led by ``pid``, wait up to ``grace`` s, then SIGKILL it.

    ``proc`` is reaped when given, so no zombie is left behind.
    """
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        if proc is None and not alive(pid):
            break
        time.sleep(0.05)
    # The leader may be gone while its group lingers; SIGKILL the group regardless.
    signal_group(pid, signal.SIGKILL)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("process %s did not exit after SIGKILL", pid)


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot); '' when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads, not its children) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_pids(path: Path) -> list[int]:
    """The recorded pids that still name the process recorded (pids get reused)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    pids = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and alive(int(fields[0])) and _start_time(int(fields[0])) == fields[1]:
            pids.append(int(fields[0]))
    return pids


def record_pid(path: Path, pid: int, name: str) -> None:
    """Append ``pid``, its start time and a name for humans to a pid file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(f"{pid} {_start_time(pid)} {name}\n")


def kill_recorded(path: Path, *, grace: float = 5.0) -> int:
    """Stop every live process group in a pid file, newest first; return how many there were."""
    pids = read_pids(path)
    for pid in reversed(pids):
        terminate_group(pid, grace=grace)
    path.unlink(missing_ok=True)
    return len(pids)


def forget_pid(path: Path, pid: int) -> None:
    """Drop ``pid`` from a pid file (after it was stopped on purpose)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return
    kept = [line for line in lines if line.split() and int(line.split()[0]) != pid]
    path.write_text("".join(f"{line}\n" for line in kept))
