"""One runner's life: claim and restore, work, keep checkpoint and status current, stop well.

``Runner`` is the pod's main process without its edges: it is given a ``CheckpointStore``,
a ``StatusSink`` and a ``ResultStore`` (ConfigMaps and the LLMAgent in a cluster, files and
memory elsewhere) and owns the one ``PoolClient`` that task mode and the gateway share.

What is guaranteed about spend (the figure that must never be lost or reset):

- On start, the newest checkpoint is restored exactly (spend by provider, tokens, the
  budget's spend in its period) before any call, and claimed under a new epoch, so an old
  runner still alive can no longer write. If the agent's status shows more spend than the
  checkpoint (spent after the last checkpoint landed), the difference is charged to the
  budget, so the budget is never under-counted.
- Task mode: a task's completion, spend and result row enter the checkpoint together,
  and the checkpoint is written and awaited (bounded by ``task_save_timeout``) before the
  result row goes to the results store and the next task starts (``outcomes``,
  docs/exactly-once.md). A runner killed at any moment therefore loses at most the spend of
  the call in flight, whose task was not marked done and runs again; a completed task never
  runs again and never has two result rows.
- Gateway mode: every paid call requests a checkpoint; writes are coalesced to one per
  ``checkpoint_spacing`` (1 s by default). A runner killed at any moment loses at most the
  spend of calls in flight and of those that ended within the last ``checkpoint_spacing``.
- While the API server is unreachable nothing can be saved: work continues, writes are
  retried with the latest state, and the guarantees above resume once it is back.
- Gateway mode, completion: the agent's ``POST /v1/agent/complete`` stops the runner taking
  calls at once and is answered only once a checkpoint holding the completion landed; a
  runner restored from such a checkpoint starts Completed and takes no call, so a completed
  agent never runs, and pays, twice (unless its container's spec changes: ``agent_digest``).
- SIGTERM (pod deletion, scale to zero): work stops, a final checkpoint and status are
  written within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from llmagents.api.runner_config import RunnerConfig, WorkMode
from llmagents.api.status import (
    MAX_COMPLETION_SUMMARY,
    AgentCompletion,
    Condition,
    ConditionStatus,
    RunnerAgentStatus,
    RunnerPhase,
    TaskProgress,
)
from llmagents.chat import Usage
from llmagents.errors import ConfigError
from llmagents.events import EventRecorder
from llmagents.routing import AttemptRecord, EngineListener, Fallback, Transition
from llmagents.routing import clock as clocks
from llmagents.runner.background import Supervisor
from llmagents.runner.checkpoint import Checkpoint, CheckpointCorrupt, CheckpointStore
from llmagents.runner.checkpoint_writer import Checkpointer
from llmagents.runner.events import AgentEvents
from llmagents.runner.metrics import RunnerMetrics
from llmagents.runner.outcomes import Outcomes
from llmagents.runner.pool_client import PoolClient
from llmagents.runner.results import ResultStore, TaskResult
from llmagents.runner.secrets import Redactor
from llmagents.runner.status import RunnerReport, StatusReporter, StatusSink, build_status
from llmagents.runner.tasks import LoopEnd, Progress, TaskLoop
from llmagents.runner.tracing import CallTracer

logger = logging.getLogger(__name__)

CHECKPOINT_TOO_LARGE = "CheckpointTooLarge"
TRACING_MISCONFIGURED = "TracingMisconfigured"
RESULTS_NOT_STORED = "ResultsNotStored"
RESULTS_PENDING = "results are pending: the results ConfigMaps cannot be written yet"
HOUSEKEEPING_INTERVAL = 1.0


def _completed_message(completion: AgentCompletion) -> str:
    message = "the agent reported its work done"
    return f"{message}: {completion.summary}" if completion.summary else message


class _Fanout(EngineListener):
    """Passes the engine's events to several listeners."""

    def __init__(self, *listeners: EngineListener) -> None:
        self.listeners = listeners

    def on_attempt(self, record: AttemptRecord) -> None:
        for listener in self.listeners:
            listener.on_attempt(record)

    def on_fallback(self, fallback: Fallback) -> None:
        for listener in self.listeners:
            listener.on_fallback(fallback)

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        for listener in self.listeners:
            listener.on_breaker_transition(provider, transition)

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        for listener in self.listeners:
            listener.on_cost(provider, usage, cost)


class _Hooks(EngineListener):
    """What the runner itself does on engine events: save spend, report breaker moves."""

    def __init__(self) -> None:
        self.runner: Runner | None = None

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        if self.runner is not None:
            self.runner.reporter.changed(urgent=True)

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        if self.runner is not None and cost > 0:
            self.runner.checkpointer.request()


class Runner:
    """The runner of one agent; see the module docstring."""

    def __init__(
        self,
        config: RunnerConfig,
        *,
        api_keys: Mapping[str, str | None],
        store: CheckpointStore,
        status_sink: StatusSink,
        results: ResultStore,
        metrics: RunnerMetrics | None = None,
        redactor: Redactor | None = None,
        events: EventRecorder | None = None,
        tracer: CallTracer | None = None,
        tracing_refused: str | None = None,
        status_interval: float = 5.0,
        checkpoint_spacing: float = 1.0,
        task_save_timeout: float = 10.0,
        task_retry_delays: tuple[float, ...] | None = None,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
    ) -> None:
        self.config = config
        self.agent = config.agent.name
        self.tracing_refused = tracing_refused
        """Why the environment's trace settings were refused (``runner.otel``), if they were."""
        self.metrics = metrics if metrics is not None else RunnerMetrics(self.agent)
        self.redact = redactor if redactor is not None else Redactor(api_keys.values())
        hooks = _Hooks()
        self.events = events
        agent = config.agent
        self.agent_events: AgentEvents | None = (
            AgentEvents(events, name=agent.name, namespace=agent.namespace, uid=agent.uid)
            if events is not None
            else None
        )
        listeners: list[EngineListener] = [self.metrics, hooks]
        if self.agent_events is not None:
            listeners.append(self.agent_events)
        if tracer is not None:
            listeners.append(tracer)
        self.engine = PoolClient.build(
            config, api_keys=api_keys, listener=_Fanout(*listeners),
            clock=clock, wall_clock=wall_clock, tracer=tracer,
        )  # fmt: skip
        if self.agent_events is not None:
            self.agent_events.manager = self.engine.manager
        self.results = results
        self.outcomes = Outcomes(results, agent=self.agent)
        self.tasks = list(config.tasks or [])
        self.progress = Progress()
        self.started_at: datetime = wall_clock()
        self.custom_state: Any = None
        self.completion: AgentCompletion | None = None
        """Set once the gateway agent reported its work done (``complete``)."""
        self.completion_saved = asyncio.Event()
        """Set once the completion is in a stored checkpoint (restored, or saved since)."""
        self.phase = RunnerPhase.STARTING
        self.message: str | None = None
        self.work_stop = asyncio.Event()
        """Set when work must end: SIGTERM, maxRuntime, or a newer runner took over."""
        self._clock = clock
        self._wall_clock = wall_clock
        self._conditions_since: dict[str, datetime] = {}
        self._summaries: dict[int, TaskProgress] = {}  # by checkpoint sequence, until landed
        self._durable_tasks = self.progress.summary(self.tasks)
        """Task progress as of the latest landed checkpoint: what the status reports. The
        operator scales a finished agent to zero, so the status must never count a task
        done whose completion a kill could still lose."""
        self._task_save_timeout = task_save_timeout
        self._task_retry_delays = task_retry_delays
        self._supervisor = Supervisor(
            self.agent, on_failure=lambda: self.reporter.changed(urgent=True),
            redact=self.redact, wall_clock=wall_clock,
        )  # fmt: skip
        self.checkpointer = Checkpointer(
            store, self._checkpoint, interval=config.checkpoint_interval.total_seconds(),
            min_spacing=checkpoint_spacing, clock=clock, wall_clock=wall_clock,
            redact=self.redact, agent=self.agent,
        )  # fmt: skip
        self.checkpointer.on_change = self._checkpoint_changed
        self.checkpointer.on_failure = lambda: self.metrics.checkpoint_failed("unavailable")
        self.reporter = StatusReporter(
            status_sink, self._report, min_interval=status_interval, clock=clock,
            on_failure=self.metrics.status_write_failed, agent=self.agent,
        )  # fmt: skip
        hooks.runner = self
        budget = self.engine.manager.budget
        if budget is not None:
            self.metrics.budget(budget.limit, lambda: budget.remaining)
        self.metrics.checkpoint_source(self.checkpointer.age)

    # -- start ------------------------------------------------------------------------------

    async def start(self, *, previous_status: RunnerAgentStatus | None = None) -> None:
        """Restore and claim the checkpoint, then start checkpoint, status and housekeeping.

        ``previous_status`` is the agent's status before this runner (for the spend check).
        """
        await self.checkpointer.claim(self._restore)
        await self.results.claim(self.checkpointer.epoch)
        if previous_status is not None:
            self._reconcile_spend(previous_status)
        if self.completion is not None:
            self.completion_saved.set()
            self._set_phase(RunnerPhase.COMPLETED, _completed_message(self.completion))
        else:
            self._set_phase(RunnerPhase.RUNNING)
        supervise = self._supervisor.start
        supervise("checkpoint writer", "CheckpointWriterFailed", self.checkpointer.run)
        supervise("status reporter", "StatusReporterFailed", self.reporter.run)
        supervise("housekeeping", "HousekeepingFailed", self._housekeeping)
        if self.events is not None:
            supervise("event recorder", "EventRecorderFailed", self.events.run)

    def _restore(self, checkpoint: Checkpoint | None) -> None:
        if checkpoint is not None and checkpoint.agent_uid != self.config.agent.uid:
            logger.warning(
                "agent %s: the checkpoint belongs to an earlier agent of this name "
                "(uid %s); starting afresh",
                self.agent,
                checkpoint.agent_uid,
            )
            checkpoint = None
        if checkpoint is None:
            return
        try:
            self.engine.manager.restore(checkpoint.engine)
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as error:
            # Nothing restored is used: the runner refuses to start and writes nothing.
            raise CheckpointCorrupt(
                f"checkpoint {checkpoint.sequence} cannot be restored: the engine state has "
                f"a bad or missing field ({type(error).__name__}: {error})"
            ) from None
        self.progress = Progress(list(checkpoint.completed), dict(checkpoint.failed))
        self._durable_tasks = self.progress.summary(self.tasks)
        self.started_at = checkpoint.started_at
        self.custom_state = checkpoint.custom_state
        self.outcomes.restore(checkpoint.unstored_results)
        completion = checkpoint.completion
        if completion is not None and completion.agent_digest != (self.config.agent_digest or ""):
            logger.info("agent %s: the agent container changed since it reported its work "
                        "done; serving it again", self.agent)  # fmt: skip
            completion = None
        self.completion = completion
        spend = self.engine.manager.spend
        logger.info(
            "agent %s: restored checkpoint %d: %d tasks done, %d failed, $%.6f spent",
            self.agent,
            checkpoint.sequence,
            len(checkpoint.completed),
            len(checkpoint.failed),
            spend.cost,
        )

    def _reconcile_spend(self, previous: RunnerAgentStatus) -> None:
        budget = self.engine.manager.budget
        reported = previous.cost
        if budget is None or reported is None or reported.period_start != budget.period_start:
            return
        missing = reported.spent_usd - budget.spent
        if missing > 1e-9:
            logger.warning(
                "agent %s: status shows $%.6f spent in this period, the checkpoint "
                "$%.6f; counting the difference against the budget",
                self.agent,
                reported.spent_usd,
                budget.spent,
            )
            budget.charge(missing)

    # -- work -------------------------------------------------------------------------------

    async def run_tasks(self) -> LoopEnd:
        """Run the pending tasks; the runner phase says Completed when all ended."""
        options: dict[str, Any] = {}
        if self._task_retry_delays is not None:
            options["retry_delays"] = self._task_retry_delays
        loop = TaskLoop(
            self.engine, self.tasks, self.progress, record=self._record,
            after_task=self._after_task, on_budget_wait=self._budget_wait,
            redact=self.redact, wall_clock=self._wall_clock, **options,
        )  # fmt: skip
        try:
            end = await loop.run(self.work_stop)
        except Exception as exc:
            # str, never repr: an exception's repr may carry the request it failed on,
            # headers and key included, escaped past the redactor.
            self._set_phase(RunnerPhase.FAILED, f"task loop failed: {type(exc).__name__}: {exc}")
            raise
        if end is LoopEnd.FINISHED:
            summary = self.progress.summary(self.tasks)
            await self.checkpointer.save(self._task_save_timeout)
            self._set_phase(
                RunnerPhase.COMPLETED, f"{summary.done} task(s) done, {summary.failed} failed"
            )
            if self.agent_events is not None:
                self.agent_events.tasks_completed(summary.done, summary.failed)
        elif end is LoopEnd.BUDGET_SPENT:
            self.message = f"budget exhausted: {self.redact(str(loop.budget_spent))}"
            self.reporter.changed(urgent=True)
            await self.checkpointer.save(self._task_save_timeout)
        return end

    def _record(self, result: TaskResult) -> None:
        """A task ended (its progress already updated): its row waits for the checkpoint."""
        self.outcomes.record(result, self.checkpointer.request())

    async def _after_task(self, result: TaskResult) -> None:
        self.metrics.task_ended(ok=result.ok)
        not_stored = len(self.results.not_stored)
        # The checkpoint is the commit; the result row is written only once it landed.
        await self.checkpointer.save(self._task_save_timeout)
        await self._store_results()
        self.reporter.changed(urgent=len(self.results.not_stored) > not_stored)

    async def _store_results(self) -> bool:
        """Write the rows whose checkpoint landed; False while the store has some pending."""
        stored = await self.outcomes.store(self.checkpointer.covered)
        fenced = self.results.fenced
        if fenced is not None and not self.work_stop.is_set():
            logger.error("agent %s: a newer runner (epoch %d) took over the results; this "
                         "runner stops working", self.agent, fenced)  # fmt: skip
            self.work_stop.set()
            self.reporter.muted = True
        return stored

    def _budget_wait(self, waiting: bool) -> None:
        if waiting:
            self.message = "budget exhausted: waiting for the next budget period"
        elif self.message and self.message.startswith("budget exhausted"):
            self.message = None
        self.reporter.changed(urgent=True)

    @property
    def accepting(self) -> bool:
        """Whether new calls may be taken (the gateway asks)."""
        return self.phase is RunnerPhase.RUNNING and not self.work_stop.is_set()

    def complete(self, summary: str | None) -> AgentCompletion:
        """Record the gateway agent's report that its work is done; the runner takes no
        call from now on. The first report counts: a repeated one changes nothing.

        The caller awaits ``checkpointer.save`` before it confirms: the completion is only
        durable once a checkpoint holding it landed.
        """
        if self.completion is None:
            self.completion = AgentCompletion(
                completed_at=self._wall_clock(),
                summary=self.redact(summary)[:MAX_COMPLETION_SUMMARY] if summary else None,
                agent_digest=self.config.agent_digest or "",
            )
            logger.info("agent %s: the agent reported its work done", self.agent)
            self._set_phase(RunnerPhase.COMPLETED, _completed_message(self.completion))
            if self.agent_events is not None:
                self.agent_events.agent_completed(self.completion.summary)
            self.checkpointer.request()
        return self.completion

    def set_custom_state(self, state: Any) -> None:
        self.custom_state = state
        self.checkpointer.request()

    def _max_runtime_reached(self) -> bool:
        limit = self.config.max_runtime
        return limit is not None and self._wall_clock() >= self.started_at + limit

    async def _housekeeping(self) -> None:
        probing: asyncio.Task[int] | None = None
        while not self.work_stop.is_set():
            if self._max_runtime_reached():
                logger.info("agent %s: maxRuntime reached; stopping work", self.agent)
                self.message = "maxRuntime reached"
                self.work_stop.set()
                self.reporter.changed(urgent=True)
                break
            # A completed agent's runner makes no call, probes included (they may be paid).
            if self.phase is not RunnerPhase.COMPLETED and (probing is None or probing.done()):
                probing = asyncio.create_task(self.engine.run_due_probes())
            status = self.engine.manager.status()
            self.metrics.providers({n: (s.breaker, s.healthy) for n, s in status.items()})
            if self.agent_events is not None:
                self.agent_events.providers_checked({n: s.misconfigured for n, s in status.items()})
                self.agent_events.budget_checked()
            if not await self._store_results():
                self.message = RESULTS_PENDING
            elif self.message == RESULTS_PENDING:
                self.message = None
            self.reporter.changed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.work_stop.wait(), HOUSEKEEPING_INTERVAL)
        if probing is not None:
            probing.cancel()

    # -- checkpoint and status ------------------------------------------------------------------

    def _checkpoint(self, epoch: int, sequence: int, with_custom_state: bool) -> Checkpoint:
        # What the status may say once this checkpoint landed (see _durable_tasks).
        self._summaries = {**self._summaries, sequence: self.progress.summary(self.tasks)}
        return Checkpoint(
            agent_uid=self.config.agent.uid,
            epoch=epoch,
            sequence=sequence,
            written_at=self._wall_clock(),
            started_at=self.started_at,
            engine=self.engine.manager.snapshot(),
            total_tasks=len(self.tasks),
            completed=list(self.progress.completed),
            failed=dict(self.progress.failed),
            custom_state=self.custom_state if with_custom_state else None,
            unstored_results=self.outcomes.rows(lean=not with_custom_state),
            completion=self.completion,
        )

    def _checkpoint_changed(self) -> None:
        checkpointer = self.checkpointer
        if checkpointer.fenced is not None:
            if not self.work_stop.is_set() and self.agent_events is not None:
                self.agent_events.fenced(str(checkpointer.fenced))
            self.work_stop.set()
            self.reporter.muted = True  # the newer runner reports now
            return
        landed = self._summaries.get(checkpointer.sequence)
        if landed is not None:
            self._durable_tasks = landed
            self._summaries = {
                n: t for n, t in self._summaries.items() if n > checkpointer.sequence
            }
        if checkpointer.last_success is not None:
            self.metrics.checkpoint_written(
                unix_time=checkpointer.last_success.timestamp(), size=checkpointer.last_size
            )
        if checkpointer.too_large is not None:
            self.metrics.checkpoint_failed("too_large")
        self.reporter.changed(urgent=checkpointer.too_large is not None)

    def _report(self) -> RunnerReport:
        status = build_status(
            self.engine.manager,
            phase=self.phase,
            message=self.message,
            started_at=self.started_at,
            tasks=self._durable_tasks if self.config.mode is WorkMode.TASKS else None,
            last_checkpoint=self.checkpointer.last_success,
            redact=self.redact,
            known_prices=self.engine.known_prices,
            completion=self.completion,
        )
        # PriceUnknown is the operator's: it resolves prices from the pool's spec before any
        # runner starts (operator.prices). The runner reports the prices it charges.
        conditions = []
        if self.tracing_refused is not None:
            conditions.append(
                Condition(
                    type=TRACING_MISCONFIGURED,
                    status=ConditionStatus.TRUE,
                    reason="TracingRefused",
                    message=self.tracing_refused,
                    last_transition_time=self._true_since(TRACING_MISCONFIGURED),
                )
            )
        too_large = self.checkpointer.too_large
        if too_large is not None:
            saved = (
                "saved without custom state" if self.checkpointer.saved_partially else "not saved"
            )
            conditions.append(
                Condition(
                    type=CHECKPOINT_TOO_LARGE,
                    status=ConditionStatus.TRUE,
                    reason=CHECKPOINT_TOO_LARGE,
                    message=f"{too_large}; {saved}",
                    last_transition_time=self._true_since(CHECKPOINT_TOO_LARGE),
                )
            )
        not_stored = self.results.not_stored
        if not_stored:
            names = ", ".join(not_stored[:5]) + (", ..." if len(not_stored) > 5 else "")
            conditions.append(
                Condition(
                    type=RESULTS_NOT_STORED,
                    status=ConditionStatus.TRUE,
                    reason="ResultsConfigMapsFull",
                    message=f"the results of {len(not_stored)} task(s) did not fit in the "
                    f"agent's results ConfigMaps and were not stored ({names}); their "
                    "outcomes are counted in status and the checkpoint",
                    last_transition_time=self._true_since(RESULTS_NOT_STORED),
                )
            )
        conditions.extend(self._supervisor.conditions())
        # A condition that is no longer reported starts afresh when it comes back.
        self._conditions_since = {c.type: c.last_transition_time for c in conditions}
        return RunnerReport(status, conditions)

    def _true_since(self, kind: str) -> datetime:
        """When condition ``kind`` became true: a report that repeats it changes nothing."""
        return self._conditions_since.setdefault(kind, self._wall_clock())

    def _set_phase(self, phase: RunnerPhase, message: str | None = None) -> None:
        if phase is not self.phase:
            logger.info("agent %s: runner %s", self.agent, phase.value)
        self.phase = phase
        if message is not None:
            self.message = message
        self.reporter.changed(urgent=True)

    # -- stop -----------------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> None:
        """Stop work and write the final checkpoint and status within ``grace`` seconds."""
        self.work_stop.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.checkpointer.fenced is None:
            saved = await self.checkpointer.save(max(0.1, (deadline - loop.time()) * 0.5))
            logger.info(
                "agent %s: final checkpoint %s",
                self.agent,
                "saved" if saved else "NOT saved (store unreachable)",
            )
            with contextlib.suppress(Exception):  # after the checkpoint: see outcomes
                async with asyncio.timeout(max(0.1, (deadline - loop.time()) * 0.4)):
                    await self._store_results()
            await self.reporter.flush(max(0.1, deadline - loop.time() - 0.2))
        if self.events is not None:
            await self.events.flush(max(0.1, min(2.0, deadline - loop.time() - 0.1)))
        tracer = self.engine.tracer
        if tracer is not None:
            with contextlib.suppress(TimeoutError):
                # The exporter's flush blocks; its thread may outlive the wait, not the process.
                async with asyncio.timeout(max(0.1, min(3.0, deadline - loop.time() - 0.1))):
                    await asyncio.to_thread(tracer.shutdown)
        await self.close()

    async def close(self) -> None:
        self.checkpointer.close()
        self.reporter.close()
        if self.events is not None:
            self.events.close()
        await self._supervisor.close()
        await self.engine.aclose()
