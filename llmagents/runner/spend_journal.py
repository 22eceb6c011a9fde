"""The spend journal: every charge on local disk before its answer leaves, so that a killed
runner loses the spend of the calls in flight and nothing else.

The checkpoint is the durable record of spend, but a gateway runner cannot write it for
every call (that would put an API server round trip on every call's latency): its
checkpoints are coalesced to one a second. Between two checkpoints the spend is kept here
as well as in memory (docs/exactly-once.md):

- **Append.** Every charge the engine makes reaches ``append`` through the engine's
  ``on_cost`` event, in the same synchronous step in which the ledger and the budget took
  it, which is before the answer (or a stream's last event) is written to the client. It is
  one JSON line written with a single ``write`` to a file opened with ``O_APPEND``. Once the
  call returned the kernel holds the bytes: a SIGKILL, the OOM killer or a container
  restart cannot lose them. Lines are not fsynced one by one: only a crash of the machine
  itself loses the kernel's unwritten pages, at most the spend since the last checkpoint.
- **Numbering.** Entries are numbered in order within one journal, which has a random id
  made when its file is created. Every checkpoint records, per journal id, the number of
  the last entry its spend includes (``Checkpoint.spend_journals``). The engine's snapshot
  and that number are taken in one synchronous step, so the checkpoint holds exactly the
  entries up to its number.
- **Fold.** A starting runner restores the checkpoint and replays the entries numbered
  above the checkpoint's mark for this journal (``pending``), so each entry counts once,
  whether or not a checkpoint holding it landed before the kill; its claim then writes them
  into the new epoch's checkpoint.
- **Compact.** Once a checkpoint landed, the entries it includes are dropped (``compact``):
  the file is rewritten, a temporary file renamed over it, with a header naming the last
  number dropped and the entries after it.

Where it lives: in a cluster, on an ``emptyDir`` volume of the runner container, which
survives the container's restarts and goes with the pod (pod deletion sends SIGTERM first,
and the runner writes a final checkpoint); with ``llmagents run -f``, beside the checkpoint
file. One runner uses a journal at a time: it holds an exclusive ``flock`` on
``<journal>.lock`` while it lives, and a second one is refused (``SpendJournalBusy``).

Nothing that cannot be read is replayed: a last line cut short (a write cut by a full
disk), a line that is not an entry, or an entry with a negative, non-finite or absurd
figure is skipped with a warning; a journal of another agent (another uid) is discarded.

A write that fails (disk full, I/O error) does not fail the call: the provider was paid,
the answer is given, and its spend is in memory and goes into the next checkpoint. The
journal reports the failure (``failure``; the runner's condition ``SpendJournalFailing``)
and appends nothing until the rewrite after the next landed checkpoint succeeds. Meanwhile a
kill loses what it lost without a journal: the calls in flight and those since the last
checkpoint. Failing the calls instead would turn a full disk into an outage of the agent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from llmagents.chat import Usage
from llmagents.routing.costs import usage_problem
from llmagents.runner.checkpoint import CheckpointError

logger = logging.getLogger(__name__)

SCHEMA = "llmagents.dev/spend-journal/v1"
FILE_NAME = "spend-journal.jsonl"
MAX_MARKS = 8
"""Journals a checkpoint keeps a mark for: the current pod's and a few earlier pods'. A pod's
journal is deleted with the pod, so only a pod that lives on beside its replacements (a
partitioned node) could come back with one whose mark was dropped."""
MAX_COST_PER_CALL = 1_000_000.0
"""US dollars one call cannot cost; an entry above it is not replayed."""


class SpendJournalBusy(CheckpointError):
    """Another runner holds the spend journal (two runners on one state directory)."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One charge as journaled: the cost as worked out then, at the prices of then."""

    number: int
    provider: str
    usage: Usage
    cost: float
    period_start: str | None
    """Start of the budget period it was charged in (ISO time); None for ``total``."""

    def line(self) -> bytes:
        u = self.usage
        entry = {
            "n": self.number,  # first, so that compaction reads it without parsing the line
            "provider": self.provider,
            "cost": self.cost,
            "period": self.period_start,
            "usage": [u.input_tokens, u.output_tokens, u.cached_input_tokens,
                      u.reasoning_tokens, u.cache_write_input_tokens],
        }  # fmt: skip
        # pydantic-core's encoder: a sixth of ``json.dumps``'s time, on every paid call.
        return to_json(entry) + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Charge:
        """The entry on ``line``; ``ValueError`` says what is wrong with it."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        number, provider, cost = data.get("n"), data.get("provider"), data.get("cost")
        period, counts = data.get("period"), data.get("usage")
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"entry number {number!r} is not a whole number above 0")
        if not isinstance(provider, str) or not provider:
            raise ValueError(f"provider {provider!r} is not a name")
        if isinstance(cost, bool) or not isinstance(cost, (int, float)):
            raise ValueError(f"cost {cost!r} is not a number")
        if not (math.isfinite(cost) and 0 <= cost <= MAX_COST_PER_CALL):
            raise ValueError(f"cost {cost!r} is outside 0..{MAX_COST_PER_CALL:g}")
        if period is not None and not isinstance(period, str):
            raise ValueError(f"period {period!r} is not a time")
        if not isinstance(counts, list) or len(counts) != 5:
            raise ValueError("usage is not five token counts")
        usage = Usage(*counts)
        problem = usage_problem(usage)
        if problem is not None or not _count(usage.cache_write_input_tokens):
            raise ValueError(f"usage: {problem or 'cache write count is not a count'}")
        return cls(number, provider, usage, float(cost), period)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(line: bytes) -> int | None:
    """The entry number of a line as this module writes it (``{"n":12,...``), unparsed."""
    if not line.startswith(b'{"n":') or not line.endswith(b"\n"):
        return None
    end = line.find(b",", 5)
    digits = line[5:end]
    return int(digits) if end > 5 and digits.isdigit() else None


class SpendJournal:
    """One runner's journal of charges since the last landed checkpoint; see the module."""

    def __init__(self, path: Path, *, agent_uid: str, agent: str = "-") -> None:
        self.path = Path(path)
        self.agent_uid = agent_uid
        self.agent = agent
        self.id = ""
        """This journal's id, made when its file was created (checkpoint marks name it)."""
        self.last = 0
        """Number of the latest entry, appended or found."""
        self.failure: str | None = None
        """Why charges are not being journaled, while they are not."""
        self._found: list[Charge] = []
        self._after = 0  # the header's number: entries up to it were dropped
        self._fd = -1
        self._lock_fd = -1
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._tmp_path = self.path.with_name(f".{self.path.name}.tmp")

    # -- start ----------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the journal and take in what an earlier runner of this pod left in it.

        Idempotent. Raises ``SpendJournalBusy`` when another runner holds it, and
        ``CheckpointError`` when its directory cannot be written.
        """
        if self._lock_fd >= 0:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise CheckpointError(f"spend journal {self.path}: {error.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise SpendJournalBusy(
                f"spend journal {self.path} is held by another runner: two runners of one "
                "agent must not share a state directory"
            ) from None
        self._lock_fd = lock
        self._read()
        # Rewritten at once: appends then start on a clean line, whatever the file ended with.
        self._rewrite(self._after, [c.line() for c in self._found])

    def _read(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        except OSError as error:
            logger.error("agent %s: spend journal %s cannot be read (%s); starting a new one",
                         self.agent, self.path, error.strerror)  # fmt: skip
            raw = b""
        lines = raw.splitlines(keepends=True)
        header = _header(lines[0]) if lines else None
        if header is None or header.get("agentUID") != self.agent_uid:
            if lines:
                logger.warning("agent %s: spend journal %s is not this agent's; starting a "
                               "new one", self.agent, self.path)  # fmt: skip
            self.id, self._after, self._found = secrets.token_hex(8), 0, []
            self.last = 0
            return
        self.id, self._after = str(header["journal"]), int(header["after"])
        found: list[Charge] = []
        for index, line in enumerate(lines[1:], start=2):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("cut short")
                charge = Charge.from_line(line)
                if charge.number <= max(self._after, found[-1].number if found else 0):
                    raise ValueError(f"entry {charge.number} is out of order")
            except ValueError as error:
                logger.warning("agent %s: spend journal %s, line %d skipped: %s",
                               self.agent, self.path, index, error)  # fmt: skip
                continue
            found.append(charge)
        self._found = found
        self.last = found[-1].number if found else self._after

    def pending(self, marks: Mapping[str, int]) -> list[Charge]:
        """The entries found at ``open`` that a checkpoint with ``marks`` does not include.

        Later entries are numbered past the checkpoint's mark, so that none of them can be
        taken as included in it (its mark counts charges that a failing journal numbered
        but did not write).
        """
        through = marks.get(self.id, 0)
        self.last = max(self.last, through)
        return [charge for charge in self._found if charge.number > through]

    # -- while running --------------------------------------------------------------------

    def append(self, provider: str, usage: Usage, cost: float, period_start: str | None) -> None:
        """Journal one charge; never raises (a failure is ``failure``, see the module)."""
        self.last += 1
        if self._fd < 0:
            return
        line = Charge(self.last, provider, usage, cost, period_start).line()
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")
        except OSError as error:
            self._fail(error)

    def compact(self, through: int) -> None:
        """A checkpoint holding the entries up to ``through`` landed: drop them from the file
        (and, after a failure, start journaling again). Synchronous on purpose: no charge
        may be appended between reading the file and renaming its rewrite."""
        if self._lock_fd < 0 or (through <= self._after and self._fd >= 0):
            return
        try:
            raw = self.path.read_bytes()
        except OSError:
            raw = b""
        # Entries past ``through`` stay; so does nothing cut short or unreadable.
        kept = [line for line in raw.splitlines(keepends=True)[1:]
                if (number := _number(line)) is not None and number > through]  # fmt: skip
        self._rewrite(max(through, self._after), kept)

    def _rewrite(self, after: int, lines: list[bytes]) -> None:
        header = {"schema": SCHEMA, "agentUID": self.agent_uid, "journal": self.id,
                  "after": after}  # fmt: skip
        try:
            with open(self._tmp_path, "wb") as out:
                out.write((json.dumps(header, separators=(",", ":")) + "\n").encode())
                out.writelines(lines)
            os.replace(self._tmp_path, self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp_path)
            if self._fd >= 0:  # the old file is intact: keep appending to it, compact later
                logger.warning("agent %s: spend journal %s not compacted: %s",
                               self.agent, self.path, error.strerror)  # fmt: skip
            else:
                self._fail(error)
            return
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._after = after
        if self.failure is not None:
            logger.info("agent %s: spend journal %s is written again", self.agent, self.path)
            self.failure = None

    def _fail(self, error: OSError) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        reason = f"spend journal {self.path}: {error.strerror or error}"
        if self.failure is None:
            logger.error("agent %s: %s; charges are kept in memory and the next checkpoint "
                         "only, until the journal can be written again", self.agent, reason)  # fmt: skip
        self.failure = reason

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1


def _header(line: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if (
        not isinstance(data, dict)
        or data.get("schema") != SCHEMA
        or not isinstance(data.get("journal"), str)
        or not _count(data.get("after"))
    ):
        return None
    return data


def marks_with(marks: Mapping[str, int], journal: str, through: int) -> dict[str, int]:
    """``marks`` with ``journal``'s mark set to ``through``, newest last, at most
    ``MAX_MARKS`` of them."""
    updated = {name: n for name, n in marks.items() if name != journal}
    updated[journal] = through
    return dict(list(updated.items())[-MAX_MARKS:])
