"""Where a checkpoint is kept: the store protocol, and a local file for runs without Kubernetes.

A store keeps one checkpoint and compare-and-swaps on a version: ``write`` succeeds only if
nobody wrote since the version the writer last saw, otherwise ``VersionConflict``. Each
stored checkpoint carries the epoch of the runner that wrote it, readable without decoding
the document; ``Checkpointer`` (``checkpoint_writer``) builds claim and fencing on these two
primitives, the same for every store. The ConfigMap store lives in ``configmap_store``;
``FileCheckpointStore`` here serves runs without Kubernetes and tests. What is stored is
the encoded document of ``checkpoint``.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llmagents.runner.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    CheckpointCorrupt,
    CheckpointTooLarge,
    Encoded,
    VersionConflict,
    b64decode,
    decode,
    whole_field,
)


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
            if not isinstance(envelope, dict):
                raise TypeError("not an object")
            whole_field(envelope, "version"), whole_field(envelope, "epoch")
        except (ValueError, KeyError, TypeError, RecursionError):
            raise CheckpointCorrupt(f"{self.path} is not a checkpoint file") from None
        return envelope

    def _read(self) -> Stored:
        envelope = self._envelope()
        if envelope is None:
            return Stored("0", 0, None)
        if "gzip" in envelope:
            payload = b64decode(envelope["gzip"], where=str(self.path))
            checkpoint = decode(payload, compressed=True)
        elif "checkpoint" in envelope:
            checkpoint = Checkpoint.from_dict(envelope["checkpoint"])
        else:
            raise CheckpointCorrupt(f"{self.path} holds no checkpoint")
        return Stored(str(envelope["version"]), int(envelope["epoch"]), checkpoint)

    def _write(self, encoded: Encoded, epoch: int, expected_version: str) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            envelope = self._envelope()
            current = str(envelope["version"]) if envelope is not None else "0"
            if current != expected_version:
                raise VersionConflict(
                    f"{self.path} is at version {current}, not {expected_version}"
                )
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
