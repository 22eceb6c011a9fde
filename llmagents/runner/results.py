"""Task results: what each task produced (or why it failed), kept where users can read them.

In a cluster, results go to a bounded set of ConfigMaps named ``<agent>-results-0`` …
(``api.runner_config.results_config_map_names``), which the runner's Role names one by one;
the runner creates each when it first puts a result there (``configmap_store``). Each result
is one key, the task's name, holding JSON; shards fill in order up to ``SHARD_LIMIT`` bytes,
so ``kubectl get cm <agent>-results-0 -o jsonpath='{.data.<task>}'`` shows a result. Text
longer than ``MAX_TEXT`` characters is cut (``truncated: true``). A result that finds every
shard full is let go, logged and listed in ``not_stored``, which the runner reports as the
``ResultsNotStored`` condition: ConfigMaps are a place to look at results, not a database,
and the task's outcome is still counted in status and checkpoint. Without Kubernetes,
results are appended to a JSON-lines file.

Stores buffer: ``add`` never waits, ``flush`` writes what is pending and keeps it pending if
the store is unreachable, so the next flush catches up. Writing a result is idempotent: a
task has one row however often its result is written (the runner writes a result again
after a restart when it cannot know whether the first write landed; docs/exactly-once.md).
The file store skips tasks the file already holds; the ConfigMap store writes a task's key
in the shard that holds it. ConfigMap writes are fenced like checkpoints: each names the
shard's resourceVersion and carries the writer's epoch, and ``claim`` marks every existing
shard with a new runner's epoch, so a stale runner's next write conflicts and is refused
(``fenced``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from llmagents.api.runner_config import AgentIdentity
from llmagents.kube import (
    KubeClient,
    KubeConflict,
    KubeError,
    KubeNotFound,
    config_map_path,
)
from llmagents.runner.configmap_store import ensure_config_map

logger = logging.getLogger(__name__)

SHARD_LIMIT = 900_000
"""Bytes of results per ConfigMap, below the API server's 1 MiB with room for metadata."""
MAX_TEXT = 64 * 1024
"""Characters of an answer kept in its result."""
ANNOTATION_EPOCH = "llmagents.dev/results-epoch"
"""The epoch of the runner that last wrote (or claimed) a results ConfigMap."""

Row = dict[str, Any]
"""A result as stored: ``TaskResult.to_dict()``; ``row["task"]`` names its task."""


@dataclass(slots=True)
class TaskResult:
    """The outcome of one task."""

    task: str
    ok: bool
    ended_at: datetime
    text: str | None = None
    provider: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_seconds: float = 0.0
    attempts: int = 0
    fallbacks: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task": self.task,
            "ok": self.ok,
            "endedAt": self.ended_at.isoformat(),
        }
        if self.ok:
            text = self.text or ""
            data.update(
                {
                    "text": text[:MAX_TEXT],
                    "provider": self.provider,
                    "model": self.model,
                    "finishReason": self.finish_reason,
                    "usage": {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens},
                    "costUSD": self.cost_usd,
                    "latencySeconds": round(self.latency_seconds, 4),
                }
            )
            if len(text) > MAX_TEXT:
                data["truncated"] = True
        else:
            data["error"] = self.error
        data["attempts"] = self.attempts
        if self.fallbacks:
            data["fallbacks"] = self.fallbacks
        return data


class ResultStore(Protocol):
    """Where results go; ``add_row`` buffers, ``flush`` writes (True when nothing is pending)."""

    not_stored: list[str]
    """Tasks (since this runner started) whose results found no room and were let go."""
    fenced: int | None
    """The epoch of a newer runner that took over the results, once a write was refused."""

    def add_row(self, row: Row) -> None: ...

    async def claim(self, epoch: int) -> None:
        """Take the results over as the runner of ``epoch`` (before writing any)."""
        ...

    async def flush(self) -> bool: ...


class FileResultStore:
    """Results appended to a JSON-lines file, one object per task, each task once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.not_stored: list[str] = []  # a file has room for every result
        self.fenced: int | None = None  # one process at a time: the checkpoint's lock fences
        self._pending: dict[str, Row] = {}
        self._stored: set[str] | None = None  # tasks the file holds, read on first flush
        self._lock = threading.Lock()  # appends run in worker threads

    def add(self, result: TaskResult) -> None:
        self.add_row(result.to_dict())

    def add_row(self, row: Row) -> None:
        self._pending[str(row["task"])] = row

    async def claim(self, epoch: int) -> None:
        return None

    async def flush(self) -> bool:
        if not self._pending:
            return True
        rows = dict(self._pending)
        await asyncio.to_thread(self._append, rows)
        for task in rows:
            self._pending.pop(task, None)
        return not self._pending

    def _append(self, rows: dict[str, Row]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a+b") as out:
            if self._stored is None:
                self._stored = self._read_tasks(out)
            lines = b"".join(
                json.dumps(row).encode() + b"\n"
                for task, row in rows.items()
                if task not in self._stored
            )  # fmt: skip
            if lines:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
            self._stored.update(rows)

    def _read_tasks(self, out: Any) -> set[str]:
        """Tasks in the file; a last line cut short by a kill is dropped from the file."""
        out.seek(0)
        data = out.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            logger.warning("%s: dropping a result line cut short (%d bytes) by an earlier stop",
                           self.path, len(data) - complete)  # fmt: skip
            out.truncate(complete)
        tasks = set()
        for line in data[:complete].splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                tasks.add(str(json.loads(line)["task"]))
        out.seek(0, os.SEEK_END)
        return tasks


class ConfigMapResultStore:
    """Results in the agent's results ConfigMaps; see the module docstring."""

    def __init__(self, kube: KubeClient, *, owner: AgentIdentity, names: Sequence[str]) -> None:
        self.kube = kube
        self.owner = owner
        self.namespace = owner.namespace
        self.names = list(names)
        self.not_stored: list[str] = []
        self.fenced: int | None = None
        self.epoch = 0
        self._sizes: list[int] | None = None  # bytes used per shard
        self._versions: list[str | None] = []  # resourceVersion per shard; None = missing
        self._pending: dict[str, str] = {}  # task -> JSON
        self._placed: dict[str, int] = {}  # task -> shard, once decided or found
        self._failing = False

    def add(self, result: TaskResult) -> None:
        self.add_row(result.to_dict())

    def add_row(self, row: Row) -> None:
        self._pending[str(row["task"])] = json.dumps(row, separators=(",", ":"))

    async def claim(self, epoch: int) -> None:
        """Mark each existing shard with ``epoch`` (compare-and-swapped), so that an older
        runner's next write there conflicts; raises ``KubeError`` (the start is retried)."""
        self.epoch = epoch
        await self._measure()
        for shard, version in enumerate(self._versions):
            if version is not None:
                await self._patch(shard, {})

    async def flush(self) -> bool:
        if not self._pending or self.fenced is not None:
            return not self._pending
        try:
            if self._sizes is None:
                await self._measure()
            by_shard: dict[int, dict[str, str]] = {}
            for task, value in list(self._pending.items()):
                shard = self._place(task, len(task) + len(value))
                if shard is None:
                    del self._pending[task]
                    self.not_stored.append(task)
                    logger.error("agent %s: results of task %s not stored: every results "
                                 "ConfigMap is full (%s)", self.owner.name, task,
                                 ", ".join(self.names))  # fmt: skip
                    continue
                by_shard.setdefault(shard, {})[task] = value
            for shard, entries in by_shard.items():
                if not await self._patch(shard, entries):
                    return False  # fenced: nothing more is written
                for task in entries:
                    self._pending.pop(task, None)
        except KubeError as error:
            if not self._failing:
                logger.warning(
                    "results not stored yet (%d pending; retrying): %s", len(self._pending), error
                )
            self._failing = True
            return False
        if self._failing:
            logger.info("results stored again")
            self._failing = False
        return not self._pending

    async def _patch(self, shard: int, entries: dict[str, str]) -> bool:
        """Write ``entries`` into ``shard`` under this runner's epoch, compare-and-swapped on
        the shard's resourceVersion; False when a newer runner owns it (``fenced`` set)."""
        name = self.names[shard]
        path = config_map_path(self.namespace, name)
        for _ in range(3):
            if self._versions[shard] is None:
                created = await ensure_config_map(self.kube, self.owner, name)
                self._versions[shard] = str(created["metadata"]["resourceVersion"])
                if self._epoch_of(created) > self.epoch:
                    return self._fence(self._epoch_of(created), name)
            patch = {"metadata": {"resourceVersion": self._versions[shard],
                                  "annotations": {ANNOTATION_EPOCH: str(self.epoch)}},
                     "data": entries}  # fmt: skip
            try:
                written = await self.kube.merge_patch(path, patch)
            except KubeNotFound:
                self._versions[shard] = None  # deleted under us: created again
                continue
            except KubeConflict:
                current = await self.kube.get(path)
                self._versions[shard] = str(current["metadata"]["resourceVersion"])
                if self._epoch_of(current) > self.epoch:
                    return self._fence(self._epoch_of(current), name)
                continue  # someone of our epoch or older wrote: write over it
            self._versions[shard] = str(written["metadata"]["resourceVersion"])
            return True
        raise KubeConflict(f"ConfigMap {name} kept changing under three writes")

    def _fence(self, theirs: int, name: str) -> bool:
        self.fenced = theirs
        logger.error("agent %s: a newer runner (epoch %d) took over ConfigMap %s from this one "
                     "(epoch %d); results are no longer written here", self.owner.name, theirs,
                     name, self.epoch)  # fmt: skip
        return False

    @staticmethod
    def _epoch_of(config_map: dict[str, Any]) -> int:
        raw = (config_map["metadata"].get("annotations") or {}).get(ANNOTATION_EPOCH, "0")
        try:
            return int(raw)
        except ValueError:
            return 0  # not ours to judge: a later write of ours replaces it

    async def _measure(self) -> None:
        sizes: list[int] = []
        versions: list[str | None] = []
        for index, name in enumerate(self.names):
            try:
                config_map = await self.kube.get(config_map_path(self.namespace, name))
            except KubeNotFound:
                sizes.append(0)
                versions.append(None)
                continue
            data = config_map.get("data") or {}
            sizes.append(sum(len(k) + len(v) for k, v in data.items()))
            versions.append(str(config_map["metadata"]["resourceVersion"]))
            for task in data:  # a result written again goes where it is, never beside it
                self._placed.setdefault(task, index)
        self._sizes, self._versions = sizes, versions

    def _place(self, task: str, size: int) -> int | None:
        assert self._sizes is not None
        if task in self._placed:
            return self._placed[task]
        for index, used in enumerate(self._sizes):
            if used + size <= SHARD_LIMIT:
                self._sizes[index] = used + size
                self._placed[task] = index
                return index
        return None
