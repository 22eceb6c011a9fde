"""Task outcomes written exactly once: the checkpoint first, the results store after it.

A task's result and its completion must never disagree after a kill: a completed task must
not run (and be paid) again, a task must not have two result rows, and spend must not be
lost. Kubernetes has no transaction across two ConfigMaps, so one write is the commit point
and the other is derived from it (docs/exactly-once.md):

1. When a task ends, in the same step as the engine charged its call (no await between),
   its completion is recorded in the runner's progress and its result row here, as
   *unstored*, with the checkpoint generation that must land before it may be written.
2. The checkpoint holding completion, spend and the unstored row is saved: the commit.
3. Only rows whose checkpoint has landed are handed to the results store; once the store
   has them, they leave the next checkpoint.

A restarted runner restores the unstored rows from its checkpoint and writes them again:
result writes are idempotent per task, so a row whose first write did land is not
duplicated. A kill before step 2 lands loses the call in flight: the task runs again, as if
its answer had never come.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from llmagents.runner.results import ResultStore, Row, TaskResult

logger = logging.getLogger(__name__)

LEAN_TEXT = 1024
"""Characters of an unstored row's text kept when the checkpoint must be made smaller."""


class Outcomes:
    """The rows of ended tasks not known to be in the results store yet."""

    def __init__(self, store: ResultStore, *, agent: str = "-") -> None:
        self.results = store
        self.agent = agent
        self._unstored: dict[str, tuple[Row, int]] = {}  # task -> (row, generation)
        # One flush at a time: housekeeping and the task loop both store, and two flushes of
        # the same rows at once could both find a task not yet written.
        self._storing = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._unstored)

    def record(self, result: TaskResult, generation: int) -> None:
        """A task ended; its row may be written once checkpoint ``generation`` landed."""
        self._unstored[result.task] = (result.to_dict(), generation)

    def rows(self, *, lean: bool = False) -> list[Row]:
        """The unstored rows for a checkpoint; ``lean`` cuts long texts (a checkpoint too
        large otherwise: the row's outcome and cost matter more than its full text)."""
        rows = [row for row, _ in self._unstored.values()]
        if not lean:
            return rows
        return [
            {**row, "text": row["text"][:LEAN_TEXT], "truncated": True}
            if isinstance(row.get("text"), str) and len(row["text"]) > LEAN_TEXT
            else row
            for row in rows
        ]

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Rows of a restored checkpoint: its landing is what made them writable."""
        self._unstored = {str(row["task"]): (row, 0) for row in rows}
        if rows:
            logger.info("agent %s: %d result(s) of the checkpoint are written again",
                        self.agent, len(rows))  # fmt: skip

    async def store(self, covered: int) -> bool:
        """Hand the rows whose checkpoint landed (generation <= ``covered``) to the store and
        flush it; False while the store has some pending (it is retried)."""
        async with self._storing:
            ready = {task: row for task, (row, generation) in self._unstored.items()
                     if generation <= covered}  # fmt: skip
            for row in ready.values():
                self.results.add_row(row)
            flushed = await self.results.flush()
        if flushed:
            for task, row in ready.items():
                if self._unstored.get(task, (None, 0))[0] is row:
                    del self._unstored[task]
        return flushed
