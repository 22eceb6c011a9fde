"""``transport.Deadline``: ``asyncio.timeout_at``'s outcomes with one timer and no coroutines."""

from __future__ import annotations

import asyncio

import pytest

from llmagents.providers.transport import Deadline


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError), Deadline(began + 0.05):
        await asyncio.sleep(10)
    assert loop.time() - began < 5
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0)  # no cancellation left pending on the task


async def test_a_block_within_its_deadline_ends_normally_and_leaves_no_timer() -> None:
    loop = asyncio.get_running_loop()
    with Deadline(loop.time() + 0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # past the deadline: nothing fires at the task now
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_deadline_already_past_times_out_at_the_first_await() -> None:
    loop = asyncio.get_running_loop()
    reached = False
    with pytest.raises(TimeoutError), Deadline(loop.time() - 1):
        reached = True
        await asyncio.sleep(10)
    assert reached


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    async def waiting() -> None:
        with Deadline(loop.time() + 10):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(waiting())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_error_inside_the_block_passes_through() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(ValueError, match="inner"), Deadline(loop.time() + 10):
        await asyncio.sleep(0)
        raise ValueError("inner")
