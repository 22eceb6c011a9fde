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
the API server is unreachable, so the next flush catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from llmagents.api.runner_config import AgentIdentity
from llmagents.runner.configmap_store import ensure_config_map
from llmagents.kube import KubeClient, KubeError, KubeNotFound, config_map_path

logger = logging.getLogger(__name__)

SHARD_LIMIT = 900_000
"""Bytes of results per ConfigMap, below the API server's 1 MiB with room for metadata."""
MAX_TEXT = 64 * 1024
"""Characters of an answer kept in its result."""


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
        data: dict[str, Any] = {"task": self.task, "ok": self.ok, "endedAt": self.ended_at.isoformat()}
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
    """Where results go; ``add`` buffers, ``flush`` writes (True when nothing is pending)."""

    not_stored: list[str]
    """Tasks (since this runner started) whose results found no room and were let go."""

    def add(self, result: TaskResult) -> None: ...

    async def flush(self) -> bool: ...


class FileResultStore:
    """Results appended to a JSON-lines file, one object per task."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.not_stored: list[str] = []  # a file has room for every result
        self._pending: list[TaskResult] = []

    def add(self, result: TaskResult) -> None:
        self._pending.append(result)

    async def flush(self) -> bool:
        if not self._pending:
            return True
        lines = "".join(json.dumps(r.to_dict()) + "\n" for r in self._pending)
        await asyncio.to_thread(self._append, lines)
        self._pending.clear()
        return True

    def _append(self, lines: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as out:
            out.write(lines)


class ConfigMapResultStore:
    """Results in the agent's results ConfigMaps; see the module docstring."""

    def __init__(self, kube: KubeClient, *, owner: AgentIdentity, names: Sequence[str]) -> None:
        self.kube = kube
        self.owner = owner
        self.namespace = owner.namespace
        self.names = list(names)
        self.not_stored: list[str] = []
        self._sizes: list[int] | None = None  # bytes used per shard
        self._missing: set[int] = set()  # shards to create before their first write
        self._pending: dict[str, str] = {}  # task -> JSON
        self._placed: dict[str, int] = {}  # task -> shard, once decided
        self._failing = False

    def add(self, result: TaskResult) -> None:
        self._pending[result.task] = json.dumps(result.to_dict(), separators=(",", ":"))

    async def flush(self) -> bool:
        if not self._pending:
            return True
        try:
            if self._sizes is None:
                self._sizes = await self._measure()
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
                name = self.names[shard]
                if shard in self._missing:
                    await ensure_config_map(self.kube, self.owner, name)
                    self._missing.discard(shard)
                try:
                    await self.kube.merge_patch(config_map_path(self.namespace, name),
                                                {"data": entries})  # fmt: skip
                except KubeNotFound:
                    self._missing.add(shard)  # deleted under us: created again next flush
                    raise
                for task in entries:
                    self._pending.pop(task, None)
        except KubeError as error:
            if not self._failing:
                logger.warning("results not stored yet (%d pending; retrying): %s",
                               len(self._pending), error)
            self._failing = True
            return False
        if self._failing:
            logger.info("results stored again")
            self._failing = False
        return not self._pending

    async def _measure(self) -> list[int]:
        sizes = []
        for index, name in enumerate(self.names):
            try:
                config_map = await self.kube.get(config_map_path(self.namespace, name))
            except KubeNotFound:
                self._missing.add(index)
                sizes.append(0)
                continue
            data = config_map.get("data") or {}
            sizes.append(sum(len(k) + len(v) for k, v in data.items()))
        return sizes

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
