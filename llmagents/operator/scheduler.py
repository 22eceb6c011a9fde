"""Delayed, de-duplicated work: "reconcile this agent in 15 s", "fold this pool soon".

The operator reacts to watch events, but some verdicts change with no event at all (a
maxRuntime deadline, a budget period rolling over, a Secret that may appear) and some
work is better coalesced (a thousand agent reports into one pool status). One pending run
per key: asking again keeps whichever run comes first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)


class Scheduler:
    """Runs ``work(key)`` after a delay, at most one pending run per key."""

    def __init__(self, work: Callable[[Hashable], Awaitable[None]]) -> None:
        self._work = work
        self._pending: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def schedule(self, key: Hashable, delay: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + max(delay, 0.0)
        current = self._pending.get(key)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        handle = loop.call_at(due, self._fire, key)
        self._pending[key] = (due, handle)

    def cancel(self, key: Hashable) -> None:
        current = self._pending.pop(key, None)
        if current is not None:
            current[1].cancel()

    def pending(self, key: Hashable) -> bool:
        return key in self._pending

    def _fire(self, key: Hashable) -> None:
        self._pending.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, key: Hashable) -> None:
        try:
            await self._work(key)
        except Exception:  # the work logs and reschedules its own failures
            logger.exception("scheduled work for %s failed", key)

    async def close(self) -> None:
        for _, handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
