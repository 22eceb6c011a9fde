"""``Later``: bookkeeping that runs after the step that queued it, and the gateway's use of it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmagents.runner.later import Later


async def test_queued_work_runs_on_the_next_turn_in_order() -> None:
    later = Later()
    ran: list[int] = []
    later(lambda: ran.append(1))
    later(lambda: ran.append(2))
    assert ran == [] and later.pending == 2  # not in the step that queued it
    await asyncio.sleep(0)
    assert ran == [1, 2] and later.pending == 0
    later(lambda: ran.append(3))  # a new turn is scheduled for work queued after a run
    await asyncio.sleep(0)
    assert ran == [1, 2, 3]


def test_without_a_running_loop_work_runs_at_once() -> None:
    ran: list[int] = []
    Later()(lambda: ran.append(1))
    assert ran == [1]


async def test_failing_work_is_logged_and_the_rest_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    later = Later()
    ran: list[int] = []

    def fail() -> None:
        raise RuntimeError("counter broke")

    later(fail)
    later(lambda: ran.append(1))
    with caplog.at_level(logging.ERROR):
        await asyncio.sleep(0)
    assert ran == [1]
    assert "bookkeeping after an answer failed" in caplog.text


def test_work_left_queued_on_a_closed_loop_runs_on_the_next_one() -> None:
    later = Later()
    ran: list[int] = []
    loop = asyncio.new_event_loop()

    def queue_then_stop() -> None:
        later(lambda: ran.append(1))
        loop.stop()  # the loop stops before the turn that would run it

    loop.call_soon(queue_then_stop)
    loop.run_forever()
    loop.close()
    assert ran == []

    async def queue_and_wait() -> None:
        later(lambda: ran.append(2))
        await asyncio.sleep(0)

    asyncio.run(queue_and_wait())
    assert ran == [1, 2]
