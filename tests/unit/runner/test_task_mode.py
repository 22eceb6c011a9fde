"""Task mode end to end in one process: real fake providers, file checkpoint, memory status."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmagents.api.status import BreakerState, CostStatus, RunnerAgentStatus, RunnerPhase
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.lifecycle import Runner
from llmagents.runner.results import FileResultStore
from llmagents.runner.tasks import LoopEnd

from .conftest import Edges, Fakes, config


def results(edges: Edges) -> dict[str, dict]:
    lines = edges.results.path.read_text().splitlines()
    return {r["task"]: r for r in map(json.loads, lines)}


async def run(runner: Runner) -> LoopEnd:
    await runner.start()
    try:
        return await runner.run_tasks()
    finally:
        await runner.shutdown(5.0)


async def test_every_task_completes_on_the_fallback_when_the_primary_is_down(
    fakes: Fakes, edges: Edges
) -> None:
    fakes.primary.core.update({"outage": True})
    runner = edges.runner(config(fakes, tasks=4))

    assert await run(runner) is LoopEnd.FINISHED

    stored = results(edges)
    assert sorted(stored) == ["task-0", "task-1", "task-2", "task-3"]
    assert {r["provider"] for r in stored.values()} == {"fallback"}
    assert all(r["ok"] and "answer to" in r["text"] for r in stored.values())
    status = edges.status.latest.status
    assert status.runner_phase is RunnerPhase.COMPLETED
    assert status.current_provider == "fallback"
    assert (status.tasks.done, status.tasks.failed, status.tasks.total) == (4, 0, 4)
    primary = next(p for p in status.providers if p.name == "primary")
    assert primary.breaker_state is BreakerState.OPEN and not primary.healthy
    assert status.healthy == "1/2"
    assert runner.engine.manager.spend.cost > 0
    assert status.cost.total_usd == pytest.approx(runner.engine.manager.spend.cost)
    assert fakes.fallback.stats.requests == 4


async def test_a_killed_runner_resumes_without_redoing_tasks_or_losing_spend(
    fakes: Fakes, edges: Edges
) -> None:
    first = edges.runner(config(fakes, tasks=2))
    await first.start()
    assert await first.run_tasks() is LoopEnd.FINISHED
    spent = first.engine.manager.spend
    await first.close()  # killed: no final checkpoint beyond the per-task ones

    second = edges.runner(config(fakes, tasks=5))
    assert await run(second) is LoopEnd.FINISHED

    assert fakes.primary.stats.requests == 5  # 2 by the first runner, 3 by the second
    restored = second.engine.manager.spend
    assert restored.calls == 5
    assert restored.cost == pytest.approx(spent.cost * 5 / 2, rel=0.2)
    assert restored.cost > spent.cost
    assert second.progress.completed == [f"task-{i}" for i in range(5)]
    stored = await edges.store.read()
    assert stored.epoch == 2 and stored.checkpoint is not None
    assert stored.checkpoint.engine["spend"]["total"]["calls"] == 5


async def test_a_failed_task_keeps_its_error_and_is_not_run_again(
    fakes: Fakes, edges: Edges
) -> None:
    tasks = [
        {"name": "good", "prompt": "fine"},
        {"name": "huge", "prompt": "too long", "maxOutputTokens": 5},
    ]
    fakes.primary.core.update({"script": ["ok", "400"]})
    fakes.fallback.core.update({"script": ["400"]})
    first = edges.runner(config(fakes, tasks=tasks))
    assert await run(first) is LoopEnd.FINISHED
    assert "every provider refused the request" in first.progress.failed["huge"]
    assert all(s.misconfigured is None for s in first.engine.manager.status().values())
    assert results(edges)["huge"]["ok"] is False
    assert edges.status.latest.status.tasks.failed == 1

    requests = fakes.primary.stats.requests + fakes.fallback.stats.requests
    second = edges.runner(config(fakes, tasks=tasks))
    assert await run(second) is LoopEnd.FINISHED
    assert fakes.primary.stats.requests + fakes.fallback.stats.requests == requests
    assert "request_refused" in second.progress.failed["huge"]


async def test_a_task_nobody_answers_is_retried_before_it_fails(fakes: Fakes, edges: Edges) -> None:
    fakes.primary.core.update({"script": ["500"]})
    fakes.fallback.core.update({"script": ["500"]})
    runner = edges.runner(config(fakes, tasks=1, pool={"circuitBreaker": {"maxFailures": 5}}))
    assert await run(runner) is LoopEnd.FINISHED
    assert runner.progress.completed == ["task-0"]
    assert results(edges)["task-0"]["attempts"] == 3


# Each call is estimated at $0.011 and really costs $0.015: the first fits a $0.012 budget
# and spends it.
SMALL_TASKS = [
    {"name": f"task-{i}", "prompt": f"Question number {i}?", "maxOutputTokens": 5,
     "estimatedOutputTokens": 1}
    for i in range(3)
]  # fmt: skip


async def test_an_exhausted_daily_budget_with_stop_pauses_the_task_list(
    fakes: Fakes, edges: Edges
) -> None:
    budget = {"limit": 0.012, "onExhausted": "stop", "period": "daily"}
    runner = edges.runner(config(fakes, tasks=SMALL_TASKS, budget=budget))
    await runner.start()
    work = asyncio.create_task(runner.run_tasks())
    async with asyncio.timeout(10):
        while not (runner.message or "").startswith("budget exhausted"):
            await asyncio.sleep(0.01)
    assert runner.progress.completed == ["task-0"]
    assert runner.engine.manager.budget.exhausted()
    await runner.reporter.flush(5)
    assert edges.status.latest.status.budget_exhausted is True
    runner.work_stop.set()
    assert await work is LoopEnd.STOPPED
    await runner.shutdown(5)
    assert fakes.primary.stats.requests == 1


async def test_local_only_goes_on_with_the_free_provider_when_the_budget_is_spent(
    fakes: Fakes, edges: Edges
) -> None:
    budget = {"limit": 0.012, "onExhausted": "local-only"}
    cfg = config(fakes, tasks=SMALL_TASKS, local=True, budget=budget)
    runner = edges.runner(cfg)
    assert await run(runner) is LoopEnd.FINISHED
    stored = results(edges)
    assert stored["task-0"]["provider"] == "primary"
    assert [stored[f"task-{i}"]["provider"] for i in (1, 2)] == ["local", "local"]
    assert fakes.local.stats.requests == 2
    assert edges.status.latest.status.budget_exhausted is True


async def test_max_runtime_stops_the_work(fakes: Fakes, edges: Edges) -> None:
    runner = edges.runner(config(fakes, tasks=3, maxRuntime="1ms"))
    await runner.start()
    async with asyncio.timeout(5):
        await runner.work_stop.wait()
    assert await runner.run_tasks() is LoopEnd.STOPPED
    await runner.shutdown(5)
    assert runner.message == "maxRuntime reached"
    assert fakes.primary.stats.requests == 0


async def test_an_oversize_checkpoint_shows_as_a_condition_and_spend_is_still_saved(
    fakes: Fakes, edges: Edges, tmp_path: Path
) -> None:
    edges.store = FileCheckpointStore(tmp_path / "small.json", limit=20_000)
    runner = edges.runner(config(fakes, tasks=None))
    await runner.start()
    runner.set_custom_state("".join(f"{i * 7919 % 104729:x}" for i in range(50_000)))
    assert await runner.checkpointer.save(5)
    await runner.reporter.flush(5)
    (condition,) = edges.status.latest.conditions
    assert (condition.type, condition.status.value) == ("CheckpointTooLarge", "True")
    assert "saved without custom state" in condition.message
    stored = await edges.store.read()
    assert stored.checkpoint.custom_state is None and "spend" in stored.checkpoint.engine

    runner.set_custom_state({"small": True})
    assert await runner.checkpointer.save(5)
    await runner.reporter.flush(5)
    assert edges.status.latest.conditions == []
    await runner.shutdown(5)


class RoomForTwo(FileResultStore):
    """A result store that fills up after two results, as full results ConfigMaps do."""

    def add_row(self, row: dict) -> None:
        if row["task"] in self._pending:
            super().add_row(row)
        elif len(self._pending) + self.stored >= 2:
            self.not_stored.append(row["task"])
        else:
            super().add_row(row)

    async def flush(self) -> bool:
        self.stored += len(self._pending)
        return await super().flush()

    stored = 0


async def test_results_that_find_no_room_show_as_a_condition_and_the_tasks_still_count(
    fakes: Fakes, edges: Edges, tmp_path: Path
) -> None:
    edges.results = RoomForTwo(tmp_path / "results.jsonl")
    runner = edges.runner(config(fakes, tasks=4))
    assert await run(runner) is LoopEnd.FINISHED
    await runner.reporter.flush(5)

    assert sorted(results(edges)) == ["task-0", "task-1"]
    latest = edges.status.latest
    (condition,) = latest.conditions
    assert (condition.type, condition.status.value, condition.reason) == (
        "ResultsNotStored",
        "True",
        "ResultsConfigMapsFull",
    )
    assert "2 task(s)" in condition.message and "task-2, task-3" in condition.message
    assert latest.status.tasks.done == 4
    first_seen = condition.last_transition_time
    runner.reporter.changed()
    await runner.reporter.flush(5)
    assert edges.status.latest.conditions[0].last_transition_time == first_seen


async def test_spend_the_status_shows_beyond_the_checkpoint_still_counts_against_the_budget(
    fakes: Fakes, edges: Edges
) -> None:
    first = edges.runner(config(fakes, tasks=1, budget={"limit": 10}))
    assert await run(first) is LoopEnd.FINISHED
    saved = first.engine.manager.budget.spent
    # The status was written after a call whose checkpoint never landed.
    previous = RunnerAgentStatus(cost=CostStatus(spent_usd=saved + 0.5, total_usd=saved + 0.5))

    second = edges.runner(config(fakes, tasks=1, budget={"limit": 10}))
    await second.start(previous_status=previous)
    assert second.engine.manager.budget.spent == pytest.approx(saved + 0.5)
    assert second.engine.manager.spend.cost == pytest.approx(saved)  # per provider: exact
    await second.shutdown(5)


async def test_a_task_strict_json_cannot_carry_fails_clearly_and_calls_no_provider(
    fakes: Fakes, edges: Edges
) -> None:
    tasks = [{"name": "broken", "prompt": "a lone \ud800 surrogate"},
             {"name": "fine", "prompt": "Question?"}]  # fmt: skip
    runner = edges.runner(config(fakes, tasks=tasks))
    assert await run(runner) is LoopEnd.FINISHED
    rows = results(edges)
    assert rows["broken"]["ok"] is False and "strict JSON" in rows["broken"]["error"]
    assert rows["fine"]["ok"] is True
    assert fakes.primary.stats.requests == 1  # only the fine task's call
