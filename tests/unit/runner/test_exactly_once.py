"""Exactly-once task outcomes: the checkpoint is the commit, result rows are derived from it
(docs/exactly-once.md). Each test stops a runner at one of the instants a kill can hit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmagents.runner.lifecycle import Runner
from llmagents.runner.results import FileResultStore, TaskResult
from llmagents.runner.tasks import LoopEnd

from .conftest import Edges, Fakes, config


class Unwritable(FileResultStore):
    """A results store the runner never reaches: its rows stay unstored (a kill right after
    the checkpoint, before the row is written, looks the same to the next runner)."""

    async def flush(self) -> bool:
        return False


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def run_until_done(runner: Runner) -> LoopEnd:
    await runner.start()
    try:
        return await runner.run_tasks()
    finally:
        await runner.close()  # killed: no shutdown, no final writes


async def test_a_task_whose_checkpoint_landed_is_not_run_again_and_its_row_is_written_once(
    fakes: Fakes, edges: Edges, tmp_path: Path
) -> None:
    results = edges.results
    edges.results = Unwritable(tmp_path / "never.jsonl")
    first = edges.runner(config(fakes, tasks=3))
    assert await run_until_done(first) is LoopEnd.FINISHED
    saved = await edges.store.read()
    assert saved.checkpoint is not None
    assert [r["task"] for r in saved.checkpoint.unstored_results] == ["task-0", "task-1", "task-2"]
    calls = fakes.primary.stats.requests

    edges.results = results
    second = edges.runner(config(fakes, tasks=3))
    await second.start()
    try:
        assert await second.run_tasks() is LoopEnd.FINISHED
        assert await second.store_results()
    finally:
        await second.shutdown(5)
    assert fakes.primary.stats.requests == calls  # nothing ran again
    assert [r["task"] for r in rows(results.path)] == ["task-0", "task-1", "task-2"]
    final = await edges.store.read()
    assert final.checkpoint is not None and final.checkpoint.unstored_results == []
    assert final.checkpoint.engine["spend"]["total"]["cost"] == pytest.approx(
        sum(r["costUSD"] for r in rows(results.path))
    )


async def test_a_row_written_before_the_kill_is_not_written_twice(
    fakes: Fakes, edges: Edges
) -> None:
    first = edges.runner(config(fakes, tasks=2))
    assert await run_until_done(first) is LoopEnd.FINISHED
    # The rows landed; say the kill came before the checkpoint that drops them from it.
    stored = json.loads(edges.store.path.read_text())
    stored["checkpoint"]["unstoredResults"] = [
        TaskResult(f"task-{i}", ok=True, ended_at=first.started_at, text="again").to_dict()
        for i in range(2)
    ]
    edges.store.path.write_text(json.dumps(stored))

    second = edges.runner(config(fakes, tasks=2))
    await second.start()
    try:
        assert await second.store_results()
    finally:
        await second.shutdown(5)
    assert [r["task"] for r in rows(edges.results.path)] == ["task-0", "task-1"]


def test_the_result_file_drops_a_line_cut_short_and_keeps_one_row_per_task(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"task": "a", "ok": True}) + "\n" + '{"task": "b", "ok"')
    store = FileResultStore(path)
    store.add_row({"task": "a", "ok": True, "text": "again"})
    store.add_row({"task": "b", "ok": True})
    store._append(dict(store._pending))
    store.add_row({"task": "b", "ok": True})
    store._append(dict(store._pending))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"task": "a", "ok": True}, {"task": "b", "ok": True}]  # fmt: skip


async def test_no_checkpoint_holds_a_charge_without_its_tasks_completion(
    fakes: Fakes, edges: Edges
) -> None:
    runner = edges.runner(config(fakes, tasks=4))
    seen: list[tuple[float, int, int]] = []
    build = runner.checkpointer._build

    def watching(epoch: int, sequence: int, with_custom_state: bool):  # type: ignore[no-untyped-def]
        checkpoint = build(epoch, sequence, with_custom_state)
        spend = checkpoint.engine["spend"]["total"]
        seen.append((spend["cost"], spend["calls"], len(checkpoint.completed)))
        return checkpoint

    runner.checkpointer._build = watching
    assert await run_until_done(runner) is LoopEnd.FINISHED
    # Every checkpoint taken had exactly as many paid calls as completed tasks.
    assert seen and all(calls == done for _, calls, done in seen), seen


async def test_the_status_never_counts_a_task_done_before_its_checkpoint_landed(
    fakes: Fakes, edges: Edges
) -> None:
    # The operator scales an agent whose status shows every task done to zero: a status
    # ahead of the checkpoint, then a kill, would leave the last task undone forever.
    store = edges.store
    gate = asyncio.Event()
    write = store.write

    async def slow_write(encoded, *, epoch, expected_version):  # type: ignore[no-untyped-def]
        if runner.progress.completed:
            await gate.wait()
        return await write(encoded, epoch=epoch, expected_version=expected_version)

    store.write = slow_write  # type: ignore[method-assign]
    runner = edges.runner(config(fakes, tasks=1))
    await runner.start()
    work = asyncio.create_task(runner.run_tasks())
    try:
        async with asyncio.timeout(10):
            while not runner.progress.completed:
                await asyncio.sleep(0.01)
        assert await runner.reporter.flush(5)
        assert edges.status.latest.status.tasks.done == 0  # answered, not yet committed
        gate.set()
        assert await work is LoopEnd.FINISHED
        assert await runner.reporter.flush(5)
        assert edges.status.latest.status.tasks.done == 1
    finally:
        gate.set()
        await runner.shutdown(5)
