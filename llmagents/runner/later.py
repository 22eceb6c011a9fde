"""Work that need not precede an answer's bytes, run right after them.

A gateway call's latency is wall-clock: everything the gateway does between the provider's
answer and the first byte of its own answer is waited for by the client. Much of that is
bookkeeping the answer does not depend on (Prometheus counters, the provider's health
sample and a closed breaker's success, the checkpoint request, events). ``Later`` queues
it and runs it from the event loop's next turn. The step that read the provider's answer
writes the client's answer before it yields (a transport write is synchronous), so queued
work runs once the answer is on its way, and before the loop reads anything new.

What must precede the answer is never queued here: the charge itself (ledger and budget,
so that the next call's admission sees it) and its spend journal line (docs/exactly-once.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

Work = Callable[[], object]


class Later:
    """Runs queued work on the event loop's next turn, in the order it was queued; at once
    when no event loop runs (a synchronous caller has no "after")."""

    __slots__ = ("_queued", "_scheduled")

    def __init__(self) -> None:
        self._queued: list[Work] = []
        self._scheduled: asyncio.AbstractEventLoop | None = None
        """The loop a run is scheduled on (None: none is)."""

    def __call__(self, work: Work) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _run(work)
            return
        if self._scheduled is not loop:
            self._scheduled = loop
            loop.call_soon(self.run)
        self._queued.append(work)

    def run(self) -> None:
        """Runs what is queued now (the loop calls it; a test or a shutdown may too)."""
        self._scheduled = None
        queued, self._queued = self._queued, []
        for work in queued:
            _run(work)

    @property
    def pending(self) -> int:
        return len(self._queued)


def _run(work: Work) -> None:
    try:
        work()
    except Exception:  # bookkeeping of one call must not stop the others'
        logger.exception("bookkeeping after an answer failed")
