"""Task mode: the agent's task list, in order, through the engine.

Each task is one call through ``PoolClient.complete``: the engine falls back, retries and
keeps to the budget within the call; this loop adds what only the task list knows:

- a completed or failed task (by name, from the checkpoint) never runs again;
- a call that no provider could answer is tried again after ``retry_delays`` (outages pass;
  breakers half-open), unless every provider refused the request itself (bad request,
  auth, unknown model), which no wait can fix; then the task fails and keeps its error;
- an exhausted budget pauses the list rather than failing tasks: with ``onExhausted: stop``
  the loop waits for a daily or monthly period to roll over (the operator meanwhile scales
  the agent to zero), and the task runs when there is budget again; a ``total`` budget never
  rolls over, so the loop ends (``LoopEnd.BUDGET_SPENT``) instead of waiting forever;
- a task with a ``responseFormat`` asks providers for JSON of its schema and accepts only
  an answer that is JSON valid against it (``answer_check``); a provider whose answer fails
  is retried and fallen back from like one that sent a malformed answer;
- a task's end is recorded by ``record`` in the same step as the answer arrives, with no
  await between the engine charging the call and the task counting as ended: any
  checkpoint holds both or neither (docs/exactly-once.md);
- after each task, ``after_task`` runs (checkpoint saved, then the result written, status
  told) before the next one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from llmagents.api.status import TaskProgress
from llmagents.api.work import BudgetPeriod, ResponseFormatSpec, TaskSpec
from llmagents.chat import (
    ChatRequest,
    ChatResponse,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
)
from llmagents.errors import (
    AllProvidersRefused,
    BudgetExhausted,
    CallFailed,
    CapabilityUnavailable,
    ErrorKind,
    RequestNotEncodable,
)
from llmagents.routing import CallTask
from llmagents.routing import clock as clocks
from llmagents.runner.pool_client import AnswerCheck, PoolClient
from llmagents.runner.results import TaskResult

logger = logging.getLogger(__name__)

RETRY_DELAYS = (5.0, 30.0)
"""Waits before a task whose call failed is tried again; then it fails for good."""
BUDGET_POLL = 30.0
"""How often a loop paused by the budget checks whether the period rolled over."""
MAX_ERROR = 2048


@dataclass(slots=True)
class Progress:
    """Which tasks ended, by name; what the checkpoint keeps of the task list."""

    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._done = set(self.completed)

    def ended(self, name: str) -> bool:
        return name in self._done or name in self.failed

    def complete(self, name: str) -> None:
        if name not in self._done:
            self._done.add(name)
            self.completed.append(name)

    def fail(self, name: str, error: str) -> None:
        self.failed[name] = error[:MAX_ERROR]

    def summary(self, tasks: Sequence[TaskSpec]) -> TaskProgress:
        """Counts over the current task list (a renamed or removed task no longer counts)."""
        names = [t.name for t in tasks]
        return TaskProgress(
            done=sum(1 for n in names if n in self._done),
            failed=sum(1 for n in names if n in self.failed and n not in self._done),
            total=len(names),
        )


class LoopEnd(StrEnum):
    """Why the task loop returned."""

    FINISHED = "finished"
    """Every task ended, done or failed."""
    STOPPED = "stopped"
    """Asked to stop (SIGTERM, maxRuntime, fencing)."""
    BUDGET_SPENT = "budget-spent"
    """A ``total`` budget with ``onExhausted: stop`` is spent: no task can run again."""


def task_request(spec: TaskSpec) -> ChatRequest:
    """The chat request of a task: its conversation, or its system prompt and prompt."""
    if spec.messages is not None:
        messages = [Message(m.role, m.content) for m in spec.messages]
    else:
        messages = [Message(Role.SYSTEM, spec.system)] if spec.system else []
        messages.append(Message(Role.USER, spec.prompt or ""))
    form = spec.response_format
    response_format = None
    if form is not None:
        response_format = ResponseFormat(ResponseFormatType.JSON_SCHEMA, form.json_schema,
                                         form.name or spec.name, form.strict)  # fmt: skip
    return ChatRequest(messages, max_tokens=spec.max_output_tokens,
                       response_format=response_format)  # fmt: skip


def answer_check(form: ResponseFormatSpec) -> AnswerCheck:
    """Why an answer is not JSON valid against the format's schema, or None when it is."""
    import jsonschema  # ~0.1 s of import, for the few tasks with a responseFormat schema

    validator = jsonschema.Draft202012Validator(form.json_schema)

    def check(answer: ChatResponse) -> str | None:
        try:
            document = json.loads(answer.text)
        except ValueError as wrong:
            return f"the answer is not the JSON the task's responseFormat asks for: {wrong}"
        error = jsonschema.exceptions.best_match(validator.iter_errors(document))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return (f"the answer does not satisfy the task's responseFormat schema at {where}: "
                f"{error.message[:300]}")  # fmt: skip

    return check


class TaskLoop:
    """Runs the pending tasks of a list; see the module docstring."""

    def __init__(
        self,
        engine: PoolClient,
        tasks: Sequence[TaskSpec],
        progress: Progress,
        *,
        record: Callable[[TaskResult], None],
        after_task: Callable[[TaskResult], Awaitable[None]],
        on_budget_wait: Callable[[bool], None],
        redact: Callable[[str], str] = lambda text: text,
        wall_clock: clocks.WallClock = clocks.utc_now,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        budget_poll: float = BUDGET_POLL,
    ) -> None:
        self.engine = engine
        self.tasks = list(tasks)
        self.progress = progress
        self._record = record
        self._after_task = after_task
        self._on_budget_wait = on_budget_wait
        self._redact = redact
        self._wall_clock = wall_clock
        self._retry_delays = tuple(retry_delays)
        self._budget_poll = budget_poll
        self.budget_spent: BudgetExhausted | None = None
        """Why the loop ended with ``BUDGET_SPENT``."""

    async def run(self, stop: asyncio.Event) -> LoopEnd:
        for spec in self.tasks:
            if self.progress.ended(spec.name):
                continue
            if stop.is_set():
                return LoopEnd.STOPPED
            result = await self._run_task(spec, stop)
            if isinstance(result, LoopEnd):
                return result
            # No await from the engine's charge to here: see the module docstring.
            if result.ok:
                self.progress.complete(spec.name)
            else:
                self.progress.fail(spec.name, result.error or "failed")
            self._record(result)
            await self._after_task(result)
        return LoopEnd.FINISHED

    async def _run_task(self, spec: TaskSpec, stop: asyncio.Event) -> TaskResult | LoopEnd:
        """The task's result, or why the loop ends before the task did."""
        request = task_request(spec)
        check = answer_check(spec.response_format) if spec.response_format else None
        # Providers that cannot do what the request needs are skipped, never blamed.
        task = dataclasses.replace(
            CallTask.from_spec(spec), capabilities=request.required_capabilities()
        )
        tries = 0
        attempts = 0
        while True:
            try:
                result = await self.engine.complete(request, task, check=check)
            except BudgetExhausted as exhausted:
                budget = self.engine.manager.budget
                if budget is not None and budget.period is BudgetPeriod.TOTAL:
                    logger.error("task %s cannot run: %s", spec.name, exhausted)
                    self.budget_spent = exhausted
                    return LoopEnd.BUDGET_SPENT
                logger.warning("task %s waits for budget: %s", spec.name, exhausted)
                if not await self._wait_for_budget(stop):
                    return LoopEnd.STOPPED
                continue
            except RequestNotEncodable as invalid:
                # The task itself holds what strict JSON cannot: no provider is called, and
                # no retry helps.
                logger.error("task %s failed: %s", spec.name, invalid)
                return TaskResult(spec.name, ok=False, ended_at=self._wall_clock(),
                                  error=str(invalid), attempts=attempts)  # fmt: skip
            except CallFailed as failed:
                attempts += len(failed.attempts)
                # No wait gives a provider a capability it lacks (a responseFormat needs
                # jsonSchema), nor cures a request every provider refused.
                refused = bool(failed.last_errors) and all(
                    e.misconfiguration or e.kind is ErrorKind.REQUEST_REFUSED
                    for e in failed.last_errors.values()
                )
                hopeless = refused or isinstance(
                    failed, CapabilityUnavailable | AllProvidersRefused
                )
                if hopeless or tries >= len(self._retry_delays):
                    message = self._redact(str(failed))
                    logger.error("task %s failed: %s", spec.name, message)
                    return TaskResult(
                        spec.name,
                        ok=False,
                        ended_at=self._wall_clock(),
                        error=message,
                        attempts=attempts,
                    )
                delay = self._retry_delays[tries]
                tries += 1
                logger.warning(
                    "task %s: no provider answered; trying again in %gs: %s",
                    spec.name,
                    delay,
                    self._redact(str(failed)),
                )
                if await _wait(stop, delay):
                    return LoopEnd.STOPPED
                continue
            answer = result.value
            return TaskResult(
                spec.name,
                ok=True,
                ended_at=self._wall_clock(),
                text=answer.text,
                provider=result.provider,
                model=answer.model,
                finish_reason=answer.finish_reason,
                input_tokens=answer.usage.input_tokens,
                output_tokens=answer.usage.output_tokens,
                cost_usd=result.cost,
                latency_seconds=result.latency,
                attempts=attempts + len(result.attempts),
                fallbacks=[
                    f"{f.from_provider}->{f.to_provider}: {f.reason}" for f in result.fallbacks
                ],
            )

    async def _wait_for_budget(self, stop: asyncio.Event) -> bool:
        """Wait until the budget has room again; False when stopped first."""
        budget = self.engine.manager.budget
        self._on_budget_wait(True)
        try:
            # At least one wait: a budget with room left but none for this task's estimate
            # is not "exhausted", and retrying at once would spin.
            while True:
                if await _wait(stop, self._budget_poll):
                    return False
                if budget is None or not budget.exhausted():
                    return True
        finally:
            self._on_budget_wait(False)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
