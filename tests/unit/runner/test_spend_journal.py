"""The spend journal: charges between checkpoints survive a killed runner, count once, and
nothing it cannot read is replayed (``llmagents.runner.spend_journal``).

A kill is played in-process by closing a runner without its shutdown: no final checkpoint,
the journal's file descriptors closed as the kernel closes a dead process's. The subprocess
chaos test (``tests/unit/test_chaos_gateway.py``) kills real processes.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmagents.chat import Usage
from llmagents.runner.checkpoint import Checkpoint, CheckpointCorrupt
from llmagents.runner.conditions import SPEND_JOURNAL_FAILING
from llmagents.runner.gateway import Gateway
from llmagents.runner.lifecycle import Runner
from llmagents.runner.spend_journal import (
    SCHEMA,
    Charge,
    SpendJournal,
    SpendJournalBusy,
    marks_with,
)
from tooling.polling import eventually_async as eventually

from .conftest import Edges, Fakes, config, openai_client

MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow"}]


def _runner(edges: Edges, fakes: Fakes, journal: Path, **options: object) -> Runner:
    # Checkpoints far apart: after the claim and the first call's, spend lives in the
    # journal only.
    options.setdefault("checkpoint_spacing", 3600.0)
    return edges.runner(config(fakes, tasks=None, budget={"limit": 100}),
                        spend_journal=journal, **options)  # fmt: skip


def _journal_failing(runner: Runner) -> float | None:
    """``llmagents_spend_journal_failing`` as a scrape of the runner's metrics reads it."""
    return runner.metrics.registry.get_sample_value(
        "llmagents_spend_journal_failing", {"agent": runner.agent}
    )


async def _serve(runner: Runner, calls: int) -> float:
    """Start ``runner``, make ``calls`` paid calls through its gateway; returns their cost
    as the gateway reported it to the client."""
    await runner.start()
    gateway = Gateway(runner)
    await gateway.start("127.0.0.1", 0)
    client = openai_client(f"http://127.0.0.1:{gateway.port}")
    cost = 0.0
    try:
        for _ in range(calls):
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=MESSAGES
            )
            cost += float(raw.headers["x-llmagents-cost-usd"])
    finally:
        await client.close()
        await gateway.stop()
    return cost


def _billed(fakes: Fakes) -> float:
    stats = fakes.primary.stats
    return (stats.input_tokens * 1000.0 + stats.output_tokens * 2000.0) / 1e6


def _stored_cost(path: Path) -> float:
    checkpoint = json.loads(path.read_text())["checkpoint"]
    return float(checkpoint["engine"]["spend"]["total"]["cost"])


async def test_calls_answered_since_the_last_checkpoint_are_not_lost_by_a_kill(
    tmp_path: Path, edges: Edges, fakes: Fakes
) -> None:
    journal = tmp_path / "journal.jsonl"
    first = _runner(edges, fakes, journal)
    answered = await _serve(first, 6)
    await first.close()  # killed: no final checkpoint
    assert answered == pytest.approx(_billed(fakes))
    # Without the journal this much would be lost: only the first call's checkpoint landed.
    assert _stored_cost(tmp_path / "checkpoint.json") < answered * 0.5

    second = _runner(edges, fakes, journal)
    await second.start()
    try:
        spend = second.engine.manager.spend
        assert spend.cost == pytest.approx(answered)
        assert spend.calls == 6
        assert second.engine.manager.budget.spent == pytest.approx(answered)
        # The claim wrote it into the checkpoint, and the journal let go of it.
        assert _stored_cost(tmp_path / "checkpoint.json") == pytest.approx(answered)
        assert len(journal.read_bytes().splitlines()) == 1  # the header alone
    finally:
        await second.close()


async def test_a_charge_already_in_a_landed_checkpoint_is_counted_once(
    tmp_path: Path, edges: Edges, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal.jsonl"
    first = _runner(edges, fakes, journal)
    # Killed after each checkpoint landed and before the journal dropped what it holds.
    monkeypatch.setattr(SpendJournal, "compact", lambda self, through: None)
    answered = await _serve(first, 4)
    assert await first.checkpointer.save(5)
    await first.close()
    monkeypatch.undo()
    assert len(journal.read_bytes().splitlines()) == 1 + 4  # all four still journaled
    assert _stored_cost(tmp_path / "checkpoint.json") == pytest.approx(answered)

    second = _runner(edges, fakes, journal)
    await second.start()
    try:
        assert second.engine.manager.spend.cost == pytest.approx(answered)
        assert second.engine.manager.spend.calls == 4
    finally:
        await second.close()


async def test_restarts_keep_numbering_so_later_charges_are_not_taken_as_checkpointed(
    tmp_path: Path, edges: Edges, fakes: Fakes
) -> None:
    journal = tmp_path / "journal.jsonl"
    total = 0.0
    for _ in range(3):  # three lives, each killed after its calls
        runner = _runner(edges, fakes, journal)
        total += await _serve(runner, 2)
        await runner.close()
    last = _runner(edges, fakes, journal)
    await last.start()
    try:
        assert last.engine.manager.spend.cost == pytest.approx(total)
        assert total == pytest.approx(_billed(fakes))
    finally:
        await last.close()


async def test_a_charge_of_an_earlier_budget_period_counts_in_spend_but_not_in_the_budget(
    tmp_path: Path, edges: Edges, fakes: Fakes
) -> None:
    journal = tmp_path / "journal.jsonl"
    now = [datetime(2026, 12, 3, 23, 59, tzinfo=UTC)]
    cfg = config(fakes, tasks=None, budget={"limit": 100, "period": "daily"})
    first = edges.runner(cfg, spend_journal=journal, checkpoint_spacing=3600.0,
                         wall_clock=lambda: now[0])  # fmt: skip
    answered = await _serve(first, 3)
    await first.close()
    now[0] += timedelta(minutes=2)  # the next UTC day
    second = edges.runner(cfg, spend_journal=journal, wall_clock=lambda: now[0])
    await second.start()
    try:
        assert second.engine.manager.spend.cost == pytest.approx(answered)
        assert second.engine.manager.budget.spent == 0.0
    finally:
        await second.close()


async def test_a_full_disk_fails_no_call_and_is_reported_until_the_journal_recovers(
    tmp_path: Path, edges: Edges, fakes: Fakes
) -> None:
    journal = tmp_path / "journal.jsonl"
    runner = _runner(edges, fakes, journal)
    await runner.start()
    gateway = Gateway(runner)
    await gateway.start("127.0.0.1", 0)
    client = openai_client(f"http://127.0.0.1:{gateway.port}")
    try:
        # The first paid call's checkpoint goes out at once; the next waits an hour.
        await client.chat.completions.create(model="auto", messages=MESSAGES)
        await eventually(lambda: runner.checkpointer.sequence == 2)  # claim, then this one
        assert _journal_failing(runner) == 0.0
        # The disk fills up: /dev/full answers every write with ENOSPC, as a full disk does.
        kept = runner.spend.journal
        assert kept is not None
        os.close(kept._fd)
        kept._fd = os.open("/dev/full", os.O_WRONLY)
        for _ in range(2):
            answer = await client.chat.completions.create(model="auto", messages=MESSAGES)
            assert answer.choices[0].message.content
        assert "No space left on device" in (runner.spend.failure or "")
        report = runner._report()
        [condition] = [c for c in report.conditions if c.type == SPEND_JOURNAL_FAILING]
        assert "the spend since the last checkpoint" in condition.message
        assert _journal_failing(runner) == 1.0  # what LLMAgentSpendJournalFailing reads
        # The next checkpoint holds those calls; its landing rewrites the journal afresh.
        assert await runner.checkpointer.save(5)
        assert runner.spend.failure is None
        assert not [c for c in runner._report().conditions if c.type == SPEND_JOURNAL_FAILING]
        assert _journal_failing(runner) == 0.0
        await client.chat.completions.create(model="auto", messages=MESSAGES)
        assert len(journal.read_bytes().splitlines()) == 2  # journaled again
    finally:
        await client.close()
        await gateway.stop()
        await runner.close()
    assert _stored_cost(tmp_path / "checkpoint.json") < _billed(fakes)
    again = _runner(edges, fakes, journal)
    await again.start()
    try:
        assert again.engine.manager.spend.cost == pytest.approx(_billed(fakes))
    finally:
        await again.close()


async def test_a_second_runner_on_the_same_journal_is_refused(
    tmp_path: Path, edges: Edges, fakes: Fakes
) -> None:
    journal = tmp_path / "journal.jsonl"
    first = _runner(edges, fakes, journal)
    await first.start()
    try:
        with pytest.raises(SpendJournalBusy, match="two runners of one agent"):
            await _runner(edges, fakes, journal).start()
    finally:
        await first.close()


def _write_journal(path: Path, *lines: bytes, uid: str = "uid-1", after: int = 0) -> None:
    header = {"schema": SCHEMA, "agentUID": uid, "journal": "j1", "after": after}
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(lines))


def _entry(number: int, cost: float = 0.5, **changes: object) -> bytes:
    line = Charge(number, "primary", Usage(10, 20), cost, None).line()
    if not changes:
        return line
    return (json.dumps({**json.loads(line), **changes}) + "\n").encode()


def test_a_torn_last_line_and_bad_entries_are_skipped_never_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.jsonl"
    _write_journal(
        path,
        _entry(1),
        b"not json\n",
        _entry(2, cost=-3.0),  # a refund
        _entry(3, usage=[10, 20, 0, 0, -1]),
        _entry(4, cost=float("inf")),
        _entry(5),
        _entry(5),  # out of order
        _entry(6)[:20],  # cut short by a full disk
    )
    journal = SpendJournal(path, agent_uid="uid-1")
    with caplog.at_level(logging.WARNING):
        journal.open()
    try:
        assert [c.number for c in journal.pending({})] == [1, 5]
        assert [c.number for c in journal.pending({"j1": 1})] == [5]
        assert len(caplog.records) == 6
        # Rewritten clean at once: the next append starts on a line of its own.
        journal.append("primary", Usage(1, 1), 0.25, None)
        lines = path.read_bytes().splitlines()
        assert [Charge.from_line(line + b"\n").number for line in lines[1:]] == [1, 5, 6]
    finally:
        journal.close()


def test_another_agents_journal_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _write_journal(path, _entry(1), uid="uid-of-a-deleted-agent")
    journal = SpendJournal(path, agent_uid="uid-1")
    journal.open()
    try:
        assert journal.pending({}) == []
        assert journal.id != "j1"
    finally:
        journal.close()


def test_numbering_goes_on_past_the_checkpoints_mark(tmp_path: Path) -> None:
    # A failing journal numbered charges it could not write, and the checkpoint holds them:
    # later entries must number past them, or a restart would take them as checkpointed.
    path = tmp_path / "journal.jsonl"
    _write_journal(path, _entry(3), after=2)
    journal = SpendJournal(path, agent_uid="uid-1")
    journal.open()
    try:
        assert journal.pending({"j1": 9}) == []
        journal.append("primary", Usage(1, 1), 0.25, None)
        assert journal.last == 10
    finally:
        journal.close()


def test_checkpoint_marks_keep_the_newest_journals() -> None:
    marks = {f"j{i}": i for i in range(10)}
    updated = marks_with(marks, "j3", 99)
    assert list(updated)[-1] == "j3" and updated["j3"] == 99
    assert len(updated) == 8 and "j0" not in updated


@pytest.mark.parametrize("marks", [[1], {"j": -1}, {"j": "7"}, {"j": True}])
def test_a_checkpoint_with_bad_journal_marks_is_corrupt(marks: object) -> None:
    good = Checkpoint("uid", 1, 1, datetime.now(UTC), datetime.now(UTC), {}).to_dict()
    with pytest.raises(CheckpointCorrupt, match="spendJournals"):
        Checkpoint.from_dict({**good, "spendJournals": marks})
