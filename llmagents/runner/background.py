"""The runner's background jobs, kept alive: a job that fails is logged, shown, restarted.

The checkpoint writer, the status reporter and housekeeping each run as an asyncio task for
the runner's whole life. An exception escaping one of them is a bug or an input nobody
foresaw (a custom state the encoder cannot take, a status the model refuses); if the task
simply ended, spend would stay in memory only, or status would freeze, with nothing to show
for it. ``Supervisor`` runs each job in a loop instead: the failure is logged with its
traceback, the job is started again after a growing delay, and the condition
``BackgroundTaskFailed`` (reason naming the job) is reported for ``SHOWN_FOR`` seconds after
the latest failure, so ``kubectl describe`` shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmagents.api.status import Condition, ConditionStatus
from llmagents.retrying import Backoff
from llmagents.routing import clock as clocks

logger = logging.getLogger(__name__)

CONDITION = "BackgroundTaskFailed"
SHOWN_FOR = 600.0
"""Seconds the condition stays after a job's latest failure."""
RESTART = Backoff(first=1.0, cap=30.0)
MAX_MESSAGE = 512


@dataclass(slots=True)
class _Failure:
    reason: str
    what: str
    error: str
    count: int
    at: datetime


class Supervisor:
    """Runs named background jobs and restarts the ones that fail; see the module docstring."""

    def __init__(
        self,
        agent: str,
        *,
        on_failure: Callable[[], None] = lambda: None,
        redact: Callable[[str], str] = lambda text: text,
        wall_clock: clocks.WallClock = clocks.utc_now,
        restart: Backoff = RESTART,
    ) -> None:
        self.agent = agent
        self._on_failure = on_failure
        self._redact = redact
        self._wall_clock = wall_clock
        self._restart = restart
        self._tasks: list[asyncio.Task[None]] = []
        self.failures: dict[str, _Failure] = {}
        """Latest failure per job reason."""

    def start(self, what: str, reason: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job()`` until it returns; ``what`` names it in logs, ``reason`` in the
        condition (CamelCase)."""
        self._tasks.append(asyncio.create_task(self._keep(what, reason, job)))

    async def _keep(self, what: str, reason: str, job: Callable[[], Awaitable[None]]) -> None:
        count = 0
        while True:
            try:
                await job()
                return
            except Exception as error:
                delay = self._restart.delay(count)
                count += 1
                text = self._redact(f"{type(error).__name__}: {error}")[:MAX_MESSAGE]
                logger.exception("agent %s: the %s failed (%d so far); restarting it in %gs",
                                 self.agent, what, count, delay)  # fmt: skip
                self.failures[reason] = _Failure(reason, what, text, count, self._wall_clock())
                self._on_failure()
            await asyncio.sleep(delay)

    def conditions(self) -> list[Condition]:
        """``BackgroundTaskFailed`` while a job failed within the last ``SHOWN_FOR`` seconds."""
        now = self._wall_clock()
        recent = [f for f in self.failures.values() if now - f.at < timedelta(seconds=SHOWN_FOR)]
        if not recent:
            return []
        recent.sort(key=lambda f: f.at)
        latest = recent[-1]
        message = "; ".join(
            f"the {f.what} failed {f.count} time(s), last at {f.at.isoformat()} ({f.error}), "
            "and was restarted" for f in recent
        )  # fmt: skip
        return [
            Condition(
                type=CONDITION,
                status=ConditionStatus.TRUE,
                reason=latest.reason,
                message=message + "; see the runner's log",
                last_transition_time=min(f.at for f in recent),
            )
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
