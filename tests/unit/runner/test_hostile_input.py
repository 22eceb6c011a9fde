"""Hostile or broken input gets a clear error and loses nothing: custom state through the
gateway, stored checkpoints that do not decode, background jobs that fail."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmagents.runner.background import CONDITION
from llmagents.runner.checkpoint import (
    MAX_DECOMPRESSED_BYTES,
    CheckpointCorrupt,
    corrupt_conditions,
    parse_epoch,
)
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.lifecycle import Runner

from .conftest import Edges, Fakes, config, serving


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


async def test_custom_state_too_deep_or_not_strict_json_is_refused_and_saving_goes_on(
    fakes: Fakes, edges: Edges
) -> None:
    runner = edges.runner(config(fakes, tasks=None))
    async with serving(runner) as origin:
        url = f"{origin}/v1/checkpoint/state"
        async with httpx.AsyncClient() as http:
            deep = await http.put(url, content=json.dumps({"state": nested(40)}))
            assert deep.status_code == 400, deep.text
            assert deep.json()["error"]["code"] == "state_too_deep"
            # Deeper than the JSON parser's own recursion limit: still a 400, not a 500.
            deeper = await http.put(url, content='{"state": ' + "[" * 5000 + "]" * 5000 + "}")
            assert deeper.status_code == 400
            for constant in ("NaN", "Infinity", "-Infinity"):
                answer = await http.put(url, content=f'{{"state": {{"x": {constant}}}}}')
                assert answer.status_code == 400, constant
            assert runner.custom_state is None
            fine = await http.put(url, json={"state": {"notes": nested(30)}})
            assert fine.status_code == 200 and fine.json()["saved"] is True
        stored = await edges.store.read()
        assert stored.checkpoint is not None
        assert stored.checkpoint.custom_state == {"notes": nested(30)}


async def test_a_failing_checkpoint_writer_is_shown_and_restarted_never_dead_quietly(
    fakes: Fakes, edges: Edges
) -> None:
    runner = edges.runner(config(fakes, tasks=None))
    await runner.start()
    try:
        # Set without the gateway's checks: the encoder recurses and fails.
        runner.set_custom_state(nested(5000))
        assert await runner.checkpointer.save(5) is False
        await runner.reporter.flush(5)
        (condition,) = [c for c in edges.status.latest.conditions if c.type == CONDITION]
        assert (condition.status.value, condition.reason) == ("True", "CheckpointWriterFailed")
        assert "RecursionError" in condition.message and "restarted" in condition.message

        runner.set_custom_state({"fine": True})
        async with asyncio.timeout(10):  # the writer is back after its restart delay
            while not await runner.checkpointer.save(5):
                await asyncio.sleep(0.05)
        stored = await edges.store.read()
        assert stored.checkpoint is not None and stored.checkpoint.custom_state == {"fine": True}
    finally:
        await runner.shutdown(5)


def envelope(path: Path, **fields: Any) -> bytes:
    path.write_text(json.dumps({"version": 3, "epoch": 2, **fields}))
    return path.read_bytes()


async def test_a_gzip_bomb_is_refused_by_the_decompressed_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    bomb = gzip.compress(b" " * (MAX_DECOMPRESSED_BYTES + 1024), compresslevel=9)
    assert len(bomb) < 100_000
    envelope(path, gzip=base64.b64encode(bomb).decode())
    with pytest.raises(CheckpointCorrupt, match="inflates beyond"):
        await FileCheckpointStore(path).read()


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"gzip": "not base64!"}, "not valid base64"),
        ({"gzip": base64.b64encode(b"not gzip").decode()}, "does not decode"),
        ({"checkpoint": nested(5000)}, "nested deeper|not a checkpoint file"),
        (
            {"checkpoint": {"schema": "llmagents.dev/checkpoint/v1", "deep": nested(100)}},
            "nested deeper",
        ),
        ({"epoch": "two"}, "not a checkpoint file"),
        (
            {"checkpoint": {"schema": "llmagents.dev/checkpoint/v1", "agentUID": "u", "epoch": -1}},
            "bad field",
        ),
    ],
    ids=["bad-base64", "bad-gzip", "deep-envelope", "deep-checkpoint", "epoch", "negative"],
)
async def test_a_stored_checkpoint_that_does_not_decode_is_corrupt_never_a_traceback(
    tmp_path: Path, fields: dict[str, Any], match: str
) -> None:
    path = tmp_path / "checkpoint.json"
    if fields.get("checkpoint") is not None and isinstance(fields["checkpoint"], list):
        body = '{"version": 3, "epoch": 2, "checkpoint": ' + "[" * 5000 + "]" * 5000 + "}"
        path.write_text(body)
    else:
        envelope(path, **fields)
    with pytest.raises(CheckpointCorrupt, match=match):
        await FileCheckpointStore(path).read()


def test_an_epoch_annotation_that_is_not_a_number_is_corrupt() -> None:
    assert parse_epoch(None, where="cm") == 0 and parse_epoch("7", where="cm") == 7
    for raw in ("seven", "1e3", "-2", "9" * 5000):
        with pytest.raises(CheckpointCorrupt, match="epoch"):
            parse_epoch(raw, where="ConfigMap a-checkpoint")


async def saved_checkpoint(fakes: Fakes, edges: Edges) -> dict[str, Any]:
    runner = edges.runner(config(fakes, tasks=1, budget={"limit": 10}))
    await runner.start()
    await runner.run_tasks()
    await runner.shutdown(5)
    return json.loads(edges.store.path.read_text())


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda e: e["engine"].update(version=99), "snapshot version 99"),
        (lambda e: e["engine"]["spend"]["total"].update(cost=-1.0), "cost -1.0"),
        (lambda e: e["engine"]["budget"].update(spent=float("nan")), "budget spend nan"),
        (lambda e: e["engine"]["budget"].update(spent=-5), "budget spend -5"),
        (lambda e: e["engine"]["providers"]["primary"]["breaker"].update(state="ajar"), "ajar"),
        (lambda e: e.update(completed="task-0"), "completed is not a list"),
    ],
    ids=[
        "snapshot-version",
        "negative-cost",
        "nan-budget",
        "negative-budget",
        "breaker",
        "completed",
    ],
)
async def test_a_checkpoint_with_an_invalid_field_is_refused_and_left_untouched(
    fakes: Fakes, edges: Edges, edit: Any, match: str
) -> None:
    stored = await saved_checkpoint(fakes, edges)
    edit(stored["checkpoint"])
    edges.store.path.write_text(json.dumps(stored))
    before = edges.store.path.read_bytes()

    runner: Runner = edges.runner(config(fakes, tasks=1, budget={"limit": 10}))
    with pytest.raises(CheckpointCorrupt, match=match) as caught:
        await runner.start()
    await runner.close()
    assert edges.store.path.read_bytes() == before
    (condition,) = corrupt_conditions(caught.value)
    assert (condition.type, condition.reason) == ("CheckpointCorrupt", "CheckpointCorrupt")
    assert "delete it to start afresh" in condition.message
