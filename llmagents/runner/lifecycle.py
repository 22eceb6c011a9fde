"""One runner's life: claim and restore, work, keep checkpoint and status current, stop well.

``Runner`` is the pod's main process without its edges: it is given a ``CheckpointStore``,
a ``StatusSink`` and a ``ResultStore`` (ConfigMaps and the LLMAgent in a cluster, files and
memory elsewhere) and owns the one ``PoolClient`` that task mode and the gateway share.
Its parts live beside it: ``spend_keeping`` (spend across restarts, with ``spend_journal``),
``checkpoint_state`` (what its checkpoints hold, and restoring from one), ``task_mode`` (the
task list), ``housekeeping`` (the once-a-second chores), ``conditions`` (what the status
reports beside the phase) and ``engine_hooks`` (the engine's events).

What is guaranteed about spend (the figure that must never be lost or reset):

- On start, the newest checkpoint is restored exactly (spend by provider, tokens, the
  budget's spend in its period) with the charges of the spend journal it lacks, before any
  call, and claimed under a new epoch, so an old runner still alive can no longer write
  (``spend_keeping``). If the agent's status shows more spend than that, the difference is
  charged to the budget, so the budget is never under-counted.
- Task mode: a task's completion, spend and result row enter the checkpoint together,
  and the checkpoint is written and awaited (bounded by ``task_save_timeout``) before the
  result row goes to the results store and the next task starts (``outcomes``,
  docs/exactly-once.md). A runner killed at any moment therefore loses at most the spend of
  the call in flight, whose task was not marked done and runs again; a completed task never
  runs again and never has two result rows.
- Gateway mode: every charge is appended to the spend journal (``spend_journal``, on a
  volume that outlives the runner's process) before its answer's last byte leaves, and
  every paid call requests a checkpoint, coalesced to one write per ``checkpoint_spacing``
  (1 s by default). A runner killed at any moment loses at most the spend of the calls in
  flight. Without a journal (none configured, or its disk failing) it also loses those that
  ended since the last checkpoint.
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
import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from llmagents.api.runner_config import RunnerConfig, WorkMode
from llmagents.api.status import (
    MAX_COMPLETION_SUMMARY,
    AgentCompletion,
    RunnerAgentStatus,
    RunnerPhase,
)
from llmagents.events import EventRecorder
from llmagents.routing import EngineListener
from llmagents.routing import clock as clocks
from llmagents.runner import checkpoint_state
from llmagents.runner.background import Supervisor
from llmagents.runner.checkpoint_state import DurableTasks
from llmagents.runner.checkpoint_store import CheckpointStore
from llmagents.runner.checkpoint_writer import Checkpointer
from llmagents.runner.conditions import state_conditions
from llmagents.runner.engine_hooks import Deferred, Fanout, RunnerHooks
from llmagents.runner.events import AgentEvents
from llmagents.runner.housekeeping import housekeeping
from llmagents.runner.later import Later
from llmagents.runner.metrics import RunnerMetrics
from llmagents.runner.outcomes import Outcomes
from llmagents.runner.pool_client import PoolClient
from llmagents.runner.results import ResultStore
from llmagents.runner.secrets import Redactor
from llmagents.runner.spend_journal import SpendJournal
from llmagents.runner.spend_keeping import SpendKeeper
from llmagents.runner.status import RunnerReport, StatusReporter, StatusSink, build_status
from llmagents.runner.task_mode import TaskMode
from llmagents.runner.tasks import LoopEnd, Progress
from llmagents.runner.tracing import CallTracer

logger = logging.getLogger(__name__)


def _completed_message(completion: AgentCompletion) -> str:
    message = "the agent reported its work done"
    return f"{message}: {completion.summary}" if completion.summary else message


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
        spend_journal: Path | None = None,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
    ) -> None:
        self.config = config
        self.agent = config.agent.name
        self.tracing_refused = tracing_refused
        """Why the environment's trace settings were refused (``runner.otel``), if they were."""
        self.metrics = metrics if metrics is not None else RunnerMetrics(self.agent)
        self.redact = redactor if redactor is not None else Redactor(api_keys.values())
        hooks = RunnerHooks()
        self.events = events
        agent = config.agent
        self.agent_events: AgentEvents | None = (
            AgentEvents(events, name=agent.name, namespace=agent.namespace, uid=agent.uid)
            if events is not None
            else None
        )
        self.later = Later()
        """Bookkeeping run after an answer's bytes went out (``runner.later``)."""
        # The charge's journal line (hooks) is written before the answer; counters and
        # events after it.
        listeners: list[EngineListener] = [Deferred(self.metrics, self.later), hooks]
        if self.agent_events is not None:
            listeners.append(Deferred(self.agent_events, self.later))
        if tracer is not None:
            listeners.append(tracer)
        self.engine = PoolClient.build(
            config, api_keys=api_keys, listener=Fanout(*listeners),
            clock=clock, wall_clock=wall_clock, tracer=tracer, defer=self.later,
        )  # fmt: skip
        if self.agent_events is not None:
            self.agent_events.manager = self.engine.manager
        journal = None
        if spend_journal is not None:
            journal = SpendJournal(spend_journal, agent_uid=agent.uid, agent=self.agent)
        self.spend = SpendKeeper(
            self.engine.manager, journal=journal, agent=self.agent,
            request_checkpoint=lambda: self.checkpointer.request(),
        )  # fmt: skip
        """Spend across restarts: restore, journal, checkpoint marks (``spend_keeping``)."""
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
        self.wall_clock = wall_clock
        self._conditions_since: dict[str, datetime] = {}
        self.durable_tasks = DurableTasks(self.progress.summary(self.tasks))
        """Task progress as of the latest landed checkpoint: what the status reports."""
        self.task_save_timeout = task_save_timeout
        self.task_retry_delays = task_retry_delays
        self._supervisor = Supervisor(
            self.agent, on_failure=lambda: self.reporter.changed(urgent=True),
            redact=self.redact, wall_clock=wall_clock,
        )  # fmt: skip
        self.checkpointer = Checkpointer(
            store, functools.partial(checkpoint_state.snapshot, self),
            interval=config.checkpoint_interval.total_seconds(),
            min_spacing=checkpoint_spacing, clock=clock, wall_clock=wall_clock,
            redact=self.redact, agent=self.agent,
        )  # fmt: skip
        self.checkpointer.on_change = functools.partial(checkpoint_state.landed, self)
        self.checkpointer.on_failure = lambda: self.metrics.checkpoint_failed("unavailable")
        self.reporter = StatusReporter(
            status_sink, self._report, min_interval=status_interval, clock=clock,
            on_failure=self.metrics.status_write_failed, agent=self.agent,
        )  # fmt: skip
        hooks.breaker_moved = lambda: self.reporter.changed(urgent=True)
        hooks.charged = self.spend.charged
        budget = self.engine.manager.budget
        if budget is not None:
            self.metrics.budget(budget.limit, lambda: budget.remaining)
        self.metrics.checkpoint_source(self.checkpointer.age)
        self.metrics.spend_journal_source(lambda: self.spend.failure)

    # -- start ------------------------------------------------------------------------------

    async def start(self, *, previous_status: RunnerAgentStatus | None = None) -> None:
        """Restore and claim the checkpoint, then start checkpoint, status and housekeeping.

        ``previous_status`` is the agent's status before this runner (for the spend check).
        """
        self.spend.open()
        await self.checkpointer.claim(functools.partial(checkpoint_state.restore, self))
        await self.results.claim(self.checkpointer.epoch)
        if previous_status is not None:
            self.spend.reconcile(previous_status)
        if self.completion is not None:
            self.completion_saved.set()
            self.set_phase(RunnerPhase.COMPLETED, _completed_message(self.completion))
        else:
            self.set_phase(RunnerPhase.RUNNING)
        supervise = self._supervisor.start
        supervise("checkpoint writer", "CheckpointWriterFailed", self.checkpointer.run)
        supervise("status reporter", "StatusReporterFailed", self.reporter.run)
        supervise("housekeeping", "HousekeepingFailed", lambda: housekeeping(self))
        if self.events is not None:
            supervise("event recorder", "EventRecorderFailed", self.events.run)

    # -- work -------------------------------------------------------------------------------

    async def run_tasks(self) -> LoopEnd:
        """Run the pending tasks (``task_mode``); the phase says Completed when all ended."""
        return await TaskMode(self).run()

    async def store_results(self) -> bool:
        """Write the rows whose checkpoint landed; False while the store has some pending."""
        stored = await self.outcomes.store(self.checkpointer.covered)
        fenced = self.results.fenced
        if fenced is not None and not self.work_stop.is_set():
            logger.error("agent %s: a newer runner (epoch %d) took over the results; this "
                         "runner stops working", self.agent, fenced)  # fmt: skip
            self.work_stop.set()
            self.reporter.muted = True
        return stored

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
                completed_at=self.wall_clock(),
                summary=self.redact(summary)[:MAX_COMPLETION_SUMMARY] if summary else None,
                agent_digest=self.config.agent_digest or "",
            )
            logger.info("agent %s: the agent reported its work done", self.agent)
            self.set_phase(RunnerPhase.COMPLETED, _completed_message(self.completion))
            if self.agent_events is not None:
                self.agent_events.agent_completed(self.completion.summary)
            self.checkpointer.request()
        return self.completion

    def set_custom_state(self, state: Any) -> None:
        self.custom_state = state
        self.checkpointer.request()

    # -- checkpoint and status ------------------------------------------------------------------

    def _report(self) -> RunnerReport:
        status = build_status(
            self.engine.manager,
            phase=self.phase,
            message=self.message,
            started_at=self.started_at,
            tasks=self.durable_tasks.current if self.config.mode is WorkMode.TASKS else None,
            last_checkpoint=self.checkpointer.last_success,
            redact=self.redact,
            known_prices=self.engine.known_prices,
            completion=self.completion,
        )
        # PriceUnknown is the operator's: it resolves prices from the pool's spec before any
        # runner starts (operator.prices). The runner reports the prices it charges.
        conditions = state_conditions(
            checkpointer=self.checkpointer, tracing_refused=self.tracing_refused,
            not_stored=self.results.not_stored, journal_failure=self.spend.failure,
            since=self._true_since,
        )  # fmt: skip
        conditions.extend(self._supervisor.conditions())
        # A condition that is no longer reported starts afresh when it comes back.
        self._conditions_since = {c.type: c.last_transition_time for c in conditions}
        return RunnerReport(status, conditions)

    def _true_since(self, kind: str) -> datetime:
        """When condition ``kind`` became true: a report that repeats it changes nothing."""
        return self._conditions_since.setdefault(kind, self.wall_clock())

    def set_phase(self, phase: RunnerPhase, message: str | None = None) -> None:
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
                    await self.store_results()
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
        self.spend.close()
        self.reporter.close()
        if self.events is not None:
            self.events.close()
        await self._supervisor.close()
        await self.engine.aclose()
