"""The runner's state in and out of its checkpoints: what one holds, restoring from one, and
what follows when one lands.

``Runner`` hands these to its ``Checkpointer``: ``restore`` when it claims the store (the
newest checkpoint, or ``None`` for a fresh start), ``snapshot`` whenever a checkpoint is
written, ``landed`` whenever the writer's state changed (a checkpoint landed, too large, or
a newer runner took over). The task progress the status reports is the progress of the
latest *landed* checkpoint (``DurableTasks``): the operator scales a finished agent to zero,
so the status must never count a task done whose completion a kill could still lose.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from llmagents.api.status import TaskProgress
from llmagents.runner.checkpoint import Checkpoint
from llmagents.runner.tasks import Progress

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner

logger = logging.getLogger(__name__)


class DurableTasks:
    """Task progress as of the latest landed checkpoint, and that of the ones in flight."""

    def __init__(self, current: TaskProgress) -> None:
        self.current = current
        """What the status reports."""
        self._written: dict[int, TaskProgress] = {}  # by checkpoint sequence, until landed

    def written(self, sequence: int, progress: TaskProgress) -> None:
        """Checkpoint ``sequence`` holds ``progress``; it counts once that checkpoint landed."""
        self._written = {**self._written, sequence: progress}

    def landed(self, sequence: int) -> None:
        landed = self._written.get(sequence)
        if landed is not None:
            self.current = landed
            self._written = {n: t for n, t in self._written.items() if n > sequence}


def restore(runner: Runner, checkpoint: Checkpoint | None) -> None:
    """Take up where ``checkpoint`` left off (spend, progress, custom state, completion); a
    checkpoint of an earlier agent of the same name is ignored."""
    if checkpoint is not None and checkpoint.agent_uid != runner.config.agent.uid:
        logger.warning(
            "agent %s: the checkpoint belongs to an earlier agent of this name "
            "(uid %s); starting afresh",
            runner.agent,
            checkpoint.agent_uid,
        )
        checkpoint = None
    runner.spend.restore(checkpoint)
    if checkpoint is None:
        return
    runner.progress = Progress(list(checkpoint.completed), dict(checkpoint.failed))
    runner.durable_tasks.current = runner.progress.summary(runner.tasks)
    runner.started_at = checkpoint.started_at
    runner.custom_state = checkpoint.custom_state
    runner.outcomes.restore(checkpoint.unstored_results)
    completion = checkpoint.completion
    if completion is not None and completion.agent_digest != (runner.config.agent_digest or ""):
        logger.info("agent %s: the agent container changed since it reported its work "
                    "done; serving it again", runner.agent)  # fmt: skip
        completion = None
    runner.completion = completion
    spend = runner.engine.manager.spend
    logger.info(
        "agent %s: restored checkpoint %d: %d tasks done, %d failed, $%.6f spent",
        runner.agent,
        checkpoint.sequence,
        len(checkpoint.completed),
        len(checkpoint.failed),
        spend.cost,
    )


def snapshot(runner: Runner, epoch: int, sequence: int, with_custom_state: bool) -> Checkpoint:
    """The checkpoint ``sequence`` of the runner as it is now."""
    runner.durable_tasks.written(sequence, runner.progress.summary(runner.tasks))
    return Checkpoint(
        agent_uid=runner.config.agent.uid,
        epoch=epoch,
        sequence=sequence,
        written_at=runner.wall_clock(),
        started_at=runner.started_at,
        engine=runner.engine.manager.snapshot(),
        total_tasks=len(runner.tasks),
        completed=list(runner.progress.completed),
        failed=dict(runner.progress.failed),
        custom_state=runner.custom_state if with_custom_state else None,
        unstored_results=runner.outcomes.rows(lean=not with_custom_state),
        completion=runner.completion,
        spend_journals=runner.spend.marks(sequence),
    )


def landed(runner: Runner) -> None:
    """Follow the checkpoint writer's news: stop working once fenced; otherwise count what
    the landed checkpoint holds as durable, and update metrics and status."""
    checkpointer = runner.checkpointer
    if checkpointer.fenced is not None:
        if not runner.work_stop.is_set() and runner.agent_events is not None:
            runner.agent_events.fenced(str(checkpointer.fenced))
        runner.work_stop.set()
        runner.reporter.muted = True  # the newer runner reports now
        return
    runner.spend.landed(checkpointer.sequence)
    runner.durable_tasks.landed(checkpointer.sequence)
    if checkpointer.last_success is not None:
        runner.metrics.checkpoint_written(
            unix_time=checkpointer.last_success.timestamp(), size=checkpointer.last_size
        )
    if checkpointer.too_large is not None:
        runner.metrics.checkpoint_failed("too_large")
    runner.reporter.changed(urgent=checkpointer.too_large is not None)
