"""The runner's once-a-second chores, for its whole life (a supervised background job).

Each round: stop work once ``maxRuntime`` is reached; start the active probes that are due
(none once the agent is Completed: a completed agent's runner makes no call, and probes may
be paid); export provider health to metrics and events; write result rows whose checkpoint
landed (``Runner.store_results``), saying in the status message while the results store
refuses them; and let the status reporter pick up whatever changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from llmagents.api.status import RunnerPhase

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner

logger = logging.getLogger(__name__)

RESULTS_PENDING = "results are pending: the results ConfigMaps cannot be written yet"
INTERVAL = 1.0
"""Seconds between two rounds."""


def _max_runtime_reached(runner: Runner) -> bool:
    limit = runner.config.max_runtime
    return limit is not None and runner.wall_clock() >= runner.started_at + limit


async def housekeeping(runner: Runner) -> None:
    """Do the chores every ``INTERVAL`` until work stops."""
    probing: asyncio.Task[int] | None = None
    while not runner.work_stop.is_set():
        if _max_runtime_reached(runner):
            logger.info("agent %s: maxRuntime reached; stopping work", runner.agent)
            runner.message = "maxRuntime reached"
            runner.work_stop.set()
            runner.reporter.changed(urgent=True)
            break
        if runner.phase is not RunnerPhase.COMPLETED and (probing is None or probing.done()):
            probing = asyncio.create_task(runner.engine.run_due_probes())
        status = runner.engine.manager.status()
        runner.metrics.providers({n: (s.breaker, s.healthy) for n, s in status.items()})
        if runner.agent_events is not None:
            runner.agent_events.providers_checked({n: s.misconfigured for n, s in status.items()})
            runner.agent_events.budget_checked()
        if not await runner.store_results():
            runner.message = RESULTS_PENDING
        elif runner.message == RESULTS_PENDING:
            runner.message = None
        runner.reporter.changed()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.work_stop.wait(), INTERVAL)
    if probing is not None:
        probing.cancel()
