"""The checkpoint document, its encoding, the file store, and claim and fencing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmagents.runner.checkpoint import (
    COMPRESS_ABOVE,
    SCHEMA,
    Checkpoint,
    CheckpointCorrupt,
    CheckpointTooLarge,
    StoreUnavailable,
    VersionConflict,
    decode,
    encode,
)
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.checkpoint_writer import Checkpointer

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def checkpoint(*, completed: int = 2, custom: object = None, epoch: int = 1) -> Checkpoint:
    return Checkpoint(
        agent_uid="uid-1", epoch=epoch, sequence=7, written_at=NOW, started_at=NOW,
        engine={"version": 1, "spend": {"total": {"cost": 1.5}}},
        total_tasks=completed + 1, completed=[f"task-{i}" for i in range(completed)],
        failed={"bad": "bad_request: no"}, custom_state=custom,
    )  # fmt: skip


def test_a_checkpoint_round_trips_through_its_encoding() -> None:
    original = checkpoint(custom={"step": 3, "notes": ["a", "b"]})
    encoded = encode(original)
    assert not encoded.compressed
    assert decode(encoded.payload, compressed=False) == original


def test_a_large_checkpoint_is_compressed_and_still_round_trips() -> None:
    original = checkpoint(completed=10_000)
    encoded = encode(original)
    assert encoded.json_size > COMPRESS_ABOVE
    assert encoded.compressed and encoded.size < encoded.json_size / 3
    assert decode(encoded.payload, compressed=True).completed == original.completed


def test_a_checkpoint_over_the_limit_is_refused_before_any_write() -> None:
    noise = "".join(f"{i * 7919 % 104729:x}" for i in range(200_000))  # does not compress away
    with pytest.raises(CheckpointTooLarge) as caught:
        encode(checkpoint(custom=noise), limit=100_000)
    assert caught.value.size > caught.value.limit == 100_000
    assert "custom state" in str(caught.value)


def test_an_unknown_schema_is_reported_not_guessed() -> None:
    with pytest.raises(CheckpointCorrupt, match=SCHEMA):
        decode(b'{"schema": "llmagents.dev/checkpoint/v9"}', compressed=False)


def test_encoding_redacts_secrets_from_the_document() -> None:
    original = checkpoint()
    original.engine["providers"] = {"a": {"misconfigured": "auth: bad key sk-secret-123456"}}
    encoded = encode(original, redact=lambda text: text.replace("sk-secret-123456", "[redacted]"))
    assert b"sk-secret" not in encoded.payload


async def test_the_file_store_refuses_a_write_on_a_stale_version(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json")
    assert (await store.read()).checkpoint is None
    version = await store.write(encode(checkpoint()), epoch=1, expected_version="0")
    with pytest.raises(VersionConflict):
        await store.write(encode(checkpoint()), epoch=1, expected_version="0")
    stored = await store.read()
    assert (stored.version, stored.epoch) == (version, 1)
    big = checkpoint(completed=10_000)
    await store.write(encode(big), epoch=1, expected_version=version)
    assert (await store.read()).checkpoint.completed == big.completed


class State:
    """A runner's state as the checkpointer sees it."""

    def __init__(self, custom: object = None) -> None:
        self.custom = custom
        self.restored: list[Checkpoint | None] = []

    def build(self, epoch: int, sequence: int, with_custom: bool) -> Checkpoint:
        cp = checkpoint(custom=self.custom if with_custom else None, epoch=epoch)
        cp.sequence = sequence
        return cp


async def test_a_newer_runner_fences_the_older_one(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json")
    old_state, new_state = State("old"), State("new")
    old = Checkpointer(store, old_state.build, interval=60)
    await old.claim(old_state.restored.append)
    writer = asyncio.create_task(old.run())
    assert await old.save(5)

    new = Checkpointer(store, new_state.build, interval=60)
    await new.claim(new_state.restored.append)
    assert new.epoch == old.epoch + 1
    assert new_state.restored[-1].custom_state == "old"

    assert not await old.save(5)
    await asyncio.wait_for(writer, 5)
    assert old.fenced is not None and old.fenced.theirs == new.epoch
    stored = await store.read()
    assert (stored.epoch, stored.checkpoint.custom_state) == (new.epoch, "new")


async def test_a_claim_restores_again_when_the_store_changed_meanwhile(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json")
    await store.write(encode(checkpoint(custom="first")), epoch=1, expected_version="0")
    state = State()
    claimer = Checkpointer(store, state.build, interval=60)

    def restore(cp: Checkpoint | None) -> None:
        state.restored.append(cp)
        if len(state.restored) == 1:  # another runner writes between our read and our claim
            store._write(encode(checkpoint(custom="second")), 1, "1")

    await claimer.claim(restore)
    assert [cp.custom_state for cp in state.restored] == ["first", "second"]
    assert claimer.epoch == 2


async def test_an_oversize_checkpoint_is_saved_without_custom_state(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json", limit=50_000)
    noise = "".join(f"{i * 7919 % 104729:x}" for i in range(100_000))
    state = State(noise)
    checkpointer = Checkpointer(store, state.build, interval=60)
    await checkpointer.claim(state.restored.append)
    assert checkpointer.too_large is not None and checkpointer.saved_partially
    stored = await store.read()
    assert stored.checkpoint.custom_state is None and stored.checkpoint.completed
    state.custom = {"small": True}
    writer = asyncio.create_task(checkpointer.run())
    assert await checkpointer.save(5)
    assert checkpointer.too_large is None
    assert (await store.read()).checkpoint.custom_state == {"small": True}
    checkpointer.close()
    await writer


async def test_requests_are_coalesced_into_few_writes(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json")
    state = State()
    checkpointer = Checkpointer(store, state.build, interval=60, min_spacing=0.2)
    await checkpointer.claim(state.restored.append)
    writer = asyncio.create_task(checkpointer.run())
    for _ in range(200):
        checkpointer.request()
        await asyncio.sleep(0.001)
    assert await checkpointer.save(5)
    assert 2 <= checkpointer.sequence <= 6  # the claim, one or a few coalesced, the save
    checkpointer.close()
    await writer


async def test_requests_within_the_spacing_do_not_wake_the_writer(tmp_path: Path) -> None:
    """Every paid call requests a checkpoint: while the writer waits out ``min_spacing``,
    a request must not wake it (a loop turn and a timer per call on the gateway's path).
    The clock moves on between two readings, as a real one does."""
    store = FileCheckpointStore(tmp_path / "cp.json")
    state = State()
    readings = 0
    base = time.monotonic()

    def clock() -> float:
        nonlocal readings
        readings += 1
        return base + readings * 1e-6  # strictly later at each reading

    checkpointer = Checkpointer(store, state.build, interval=60, min_spacing=60, clock=clock)
    await checkpointer.claim(state.restored.append)
    writer = asyncio.create_task(checkpointer.run())
    assert await checkpointer.save(5)  # a write: the next may come min_spacing after it
    checkpointer.request()
    for _ in range(3):
        await asyncio.sleep(0)
    before = readings
    for _ in range(100):
        checkpointer.request()
        for _ in range(3):
            await asyncio.sleep(0)
    assert readings - before < 10, f"{readings - before} clock readings for 100 requests"
    checkpointer.close()
    await writer


class Flaky(FileCheckpointStore):
    """A file store whose backend is unreachable while ``down``."""

    down = False

    async def write(self, encoded, *, epoch, expected_version):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("connection refused")
        return await super().write(encoded, epoch=epoch, expected_version=expected_version)


async def test_a_save_returns_at_once_when_the_store_is_down_and_catches_up_later(
    tmp_path: Path,
) -> None:
    store = Flaky(tmp_path / "cp.json")
    state = State("before")
    checkpointer = Checkpointer(store, state.build, interval=60, min_spacing=0.01)
    await checkpointer.claim(state.restored.append)
    writer = asyncio.create_task(checkpointer.run())
    store.down = True
    state.custom = "during"
    async with asyncio.timeout(2):  # far below the save timeout
        assert not await checkpointer.save(30)
    store.down = False
    async with asyncio.timeout(5):
        while (await store.read()).checkpoint.custom_state != "during":
            await asyncio.sleep(0.01)
    checkpointer.close()
    await writer
