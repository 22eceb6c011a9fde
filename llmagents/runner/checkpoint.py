"""What a checkpoint holds, how it is encoded, and where it can be kept.

A checkpoint (schema v1) is everything a restarted runner needs to go on as if it had not
stopped: progress through the task list (completed and failed task names, failures with
their error), the engine's snapshot (spend by provider with tokens, the budget's period and
spend, breakers with their transitions, health, current provider), when the runner first
started (``maxRuntime`` counts from there) and the custom state gateway clients stored.

Stores keep one checkpoint each and compare-and-swap on a version: ``write`` succeeds only
if nobody wrote since the version the writer last saw, otherwise ``VersionConflict``. Each
stored checkpoint carries the epoch of the runner that wrote it, readable without decoding
the document; ``Checkpointer`` builds claim and fencing on these two primitives, the same
for every store. The ConfigMap store lives in ``configmap_store``; ``FileCheckpointStore``
here serves runs without Kubernetes and tests.

Encoding: compact JSON; above ``COMPRESS_ABOVE`` bytes it is gzipped. A document that is
still larger than the store's limit is refused before any write (``CheckpointTooLarge``).
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from llmagents.errors import LLMAgentsError

SCHEMA = "llmagents.dev/checkpoint/v1"
COMPRESS_ABOVE = 64 * 1024
"""Documents larger than this many bytes of JSON are stored gzipped."""
MAX_CHECKPOINT_BYTES = 1_000_000
"""Largest stored payload: a ConfigMap holds at most 1 MiB of data, minus a margin."""


class CheckpointError(LLMAgentsError):
    """A checkpoint could not be read or written."""


class CheckpointTooLarge(CheckpointError):
    """The checkpoint, even compressed, exceeds what its store can hold."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"checkpoint of {size} bytes (compressed) exceeds the limit of {limit} bytes; "
            "store less custom state through the gateway"
        )
        self.size = size
        self.limit = limit


class CheckpointCorrupt(CheckpointError):
    """The stored checkpoint cannot be decoded or has an unknown schema."""


class VersionConflict(CheckpointError):
    """Someone wrote the checkpoint since the version the writer expected."""


class CheckpointFenced(CheckpointError):
    """A newer runner of the same agent owns the checkpoint; this runner must stop."""

    def __init__(self, ours: int, theirs: int) -> None:
        super().__init__(
            f"a newer runner (epoch {theirs}) took over the checkpoint from this one "
            f"(epoch {ours}); this runner stops working"
        )
        self.ours = ours
        self.theirs = theirs


class StoreUnavailable(CheckpointError):
    """The store could not be reached; the write is retried later."""


@dataclass(slots=True)
class Checkpoint:
    """One saved state of a runner (schema v1)."""

    agent_uid: str
    epoch: int
    sequence: int
    written_at: datetime
    started_at: datetime
    engine: dict[str, Any]
    total_tasks: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    custom_state: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "agentUID": self.agent_uid,
            "epoch": self.epoch,
            "sequence": self.sequence,
            "writtenAt": self.written_at.isoformat(),
            "startedAt": self.started_at.isoformat(),
            "progress": {
                "total": self.total_tasks,
                "done": len(self.completed),
                "failed": len(self.failed),
            },
            "completed": self.completed,
            "failed": self.failed,
            "engine": self.engine,
            "customState": self.custom_state,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise CheckpointCorrupt(f"checkpoint schema {found!r} is not {SCHEMA!r}")
        try:
            return cls(
                agent_uid=str(data["agentUID"]),
                epoch=int(data["epoch"]),
                sequence=int(data["sequence"]),
                written_at=datetime.fromisoformat(data["writtenAt"]),
                started_at=datetime.fromisoformat(data["startedAt"]),
                engine=dict(data["engine"]),
                total_tasks=int(data["progress"]["total"]),
                completed=[str(n) for n in data["completed"]],
                failed={str(k): str(v) for k, v in data["failed"].items()},
                custom_state=data.get("customState"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointCorrupt(f"checkpoint is missing or has a bad field: {exc}") from None


@dataclass(frozen=True, slots=True)
class Encoded:
    """A checkpoint ready to store: ``payload`` is JSON, or gzipped JSON when ``compressed``."""

    payload: bytes
    compressed: bool
    json_size: int

    @property
    def size(self) -> int:
        return len(self.payload)


def encode(
    checkpoint: Checkpoint,
    *,
    compress_above: int = COMPRESS_ABOVE,
    limit: int = MAX_CHECKPOINT_BYTES,
    redact: Callable[[str], str] | None = None,
) -> Encoded:
    """The stored form of ``checkpoint``; ``CheckpointTooLarge`` when it cannot fit.

    ``redact`` cleans the JSON text (provider messages inside the engine's snapshot).
    """
    text = json.dumps(checkpoint.to_dict(), separators=(",", ":"))
    if redact is not None:
        text = redact(text)
    raw = text.encode()
    encoded = Encoded(raw, False, len(raw))
    if len(raw) > compress_above:
        encoded = Encoded(gzip.compress(raw, compresslevel=6, mtime=0), True, len(raw))
    if encoded.size > limit:
        raise CheckpointTooLarge(encoded.size, limit)
    return encoded


def decode(payload: bytes, *, compressed: bool) -> Checkpoint:
    try:
        raw = gzip.decompress(payload) if compressed else payload
        data = json.loads(raw)
    except (OSError, EOFError, ValueError) as exc:
        raise CheckpointCorrupt(f"checkpoint does not decode: {exc}") from None
    return Checkpoint.from_dict(data)


@dataclass(frozen=True, slots=True)
class Stored:
    """What a store holds now: its version, the writer's epoch (0 = none) and the document."""

    version: str
    epoch: int
    checkpoint: Checkpoint | None


class CheckpointStore(Protocol):
    """One checkpoint, compare-and-swapped on a version."""

    limit: int
    """Largest payload the store can hold, in bytes."""

    async def read(self) -> Stored:
        """The current content; ``CheckpointCorrupt`` if it cannot be decoded."""
        ...

    async def write(self, encoded: Encoded, *, epoch: int, expected_version: str) -> str:
        """Store ``encoded`` if the version is still ``expected_version``; returns the new
        version. Raises ``VersionConflict``, ``StoreUnavailable`` or ``CheckpointTooLarge``."""
        ...


class FileCheckpointStore:
    """A checkpoint in a local JSON file, replaced atomically; for runs without Kubernetes.

    The compare-and-swap holds across processes: it runs under an exclusive ``flock`` of a
    lock file beside the checkpoint.
    """

    def __init__(self, path: Path, *, limit: int = MAX_CHECKPOINT_BYTES) -> None:
        self.path = Path(path)
        self.limit = limit
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    async def read(self) -> Stored:
        return await asyncio.to_thread(self._read)

    async def write(self, encoded: Encoded, *, epoch: int, expected_version: str) -> str:
        if encoded.size > self.limit:
            raise CheckpointTooLarge(encoded.size, self.limit)
        return await asyncio.to_thread(self._write, encoded, epoch, expected_version)

    def _envelope(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            envelope = json.loads(text)
            int(envelope["version"]), int(envelope["epoch"])
        except (ValueError, KeyError, TypeError):
            raise CheckpointCorrupt(f"{self.path} is not a checkpoint file") from None
        return envelope  # type: ignore[no-any-return]

    def _read(self) -> Stored:
        envelope = self._envelope()
        if envelope is None:
            return Stored("0", 0, None)
        if "gzip" in envelope:
            checkpoint = decode(base64.b64decode(envelope["gzip"]), compressed=True)
        else:
            checkpoint = Checkpoint.from_dict(envelope["checkpoint"])
        return Stored(str(envelope["version"]), int(envelope["epoch"]), checkpoint)

    def _write(self, encoded: Encoded, epoch: int, expected_version: str) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            envelope = self._envelope()
            current = str(envelope["version"]) if envelope is not None else "0"
            if current != expected_version:
                raise VersionConflict(f"{self.path} is at version {current}, not {expected_version}")
            version = str(int(current) + 1)
            body: dict[str, Any] = {"version": int(version), "epoch": epoch}
            if encoded.compressed:
                body["gzip"] = base64.b64encode(encoded.payload).decode()
            else:
                body["checkpoint"] = json.loads(encoded.payload)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w") as out:
                json.dump(body, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        return version
