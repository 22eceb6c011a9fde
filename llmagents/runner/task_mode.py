"""Task mode's work: the task list through the engine, each task's outcome committed by a
checkpoint before its result row is written.

``TaskMode`` is to task mode what ``Gateway`` is to gateway mode: it drives the ``Runner``'s
engine and reports through the runner. The order of one task's end (docs/exactly-once.md):
the task loop marks it done and ``_record`` keeps its row as unstored in the same step as the
engine charged its call; ``_after_task`` saves the checkpoint (the commit) and only then
writes the rows whose checkpoint landed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmagents.api.status import RunnerPhase
from llmagents.runner.results import TaskResult
from llmagents.runner.tasks import LoopEnd, TaskLoop

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner


class TaskMode:
    """Runs a runner's pending tasks once; see the module docstring."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def run(self) -> LoopEnd:
        """Run the pending tasks; the runner phase says Completed when all ended."""
        runner = self.runner
        options: dict[str, Any] = {}
        if runner.task_retry_delays is not None:
            options["retry_delays"] = runner.task_retry_delays
        loop = TaskLoop(
            runner.engine, runner.tasks, runner.progress, record=self._record,
            after_task=self._after_task, on_budget_wait=self._budget_wait,
            redact=runner.redact, wall_clock=runner.wall_clock, **options,
        )  # fmt: skip
        try:
            end = await loop.run(runner.work_stop)
        except Exception as exc:
            # str, never repr: an exception's repr may carry the request it failed on,
            # headers and key included, escaped past the redactor.
            runner.set_phase(RunnerPhase.FAILED, f"task loop failed: {type(exc).__name__}: {exc}")
            raise
        if end is LoopEnd.FINISHED:
            summary = runner.progress.summary(runner.tasks)
            await runner.checkpointer.save(runner.task_save_timeout)
            runner.set_phase(
                RunnerPhase.COMPLETED, f"{summary.done} task(s) done, {summary.failed} failed"
            )
            if runner.agent_events is not None:
                runner.agent_events.tasks_completed(summary.done, summary.failed)
        elif end is LoopEnd.BUDGET_SPENT:
            runner.message = f"budget exhausted: {runner.redact(str(loop.budget_spent))}"
            runner.reporter.changed(urgent=True)
            await runner.checkpointer.save(runner.task_save_timeout)
        return end

    def _record(self, result: TaskResult) -> None:
        """A task ended (its progress already updated): its row waits for the checkpoint."""
        self.runner.outcomes.record(result, self.runner.checkpointer.request())

    async def _after_task(self, result: TaskResult) -> None:
        runner = self.runner
        runner.metrics.task_ended(ok=result.ok)
        not_stored = len(runner.results.not_stored)
        # The checkpoint is the commit; the result row is written only once it landed.
        await runner.checkpointer.save(runner.task_save_timeout)
        await runner.store_results()
        runner.reporter.changed(urgent=len(runner.results.not_stored) > not_stored)

    def _budget_wait(self, waiting: bool) -> None:
        runner = self.runner
        if waiting:
            runner.message = "budget exhausted: waiting for the next budget period"
        elif runner.message and runner.message.startswith("budget exhausted"):
            runner.message = None
        runner.reporter.changed(urgent=True)
