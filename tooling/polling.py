"""Waiting for a state: poll with a deadline, never a bare sleep. The one ``eventually`` of
the tests and the demo, in a blocking and an asyncio form."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["NotReached", "eventually", "eventually_async"]


class NotReached(AssertionError):
    """The awaited state did not come before the deadline (an ``AssertionError``, so that a
    test fails with it as with any assertion)."""


def _failure(timeout: float, what: str | Callable[[], str],
             details: Callable[[], str] | None, probe: object) -> NotReached:  # fmt: skip
    name = what() if callable(what) else what or repr(probe)
    extra = f"\n{details()}" if details is not None else ""
    return NotReached(f"timed out after {timeout:g} s waiting for {name}{extra}")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    what: str | Callable[[], str] = "",
    details: Callable[[], str] | None = None,
    every: float = 0.2,
) -> T:
    """Poll ``probe`` until it returns something truthy, and return that; ``NotReached`` at
    the deadline. ``what`` names the awaited state (a callable is evaluated only on failure,
    so it may read logs); ``details`` adds diagnostics to the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _failure(timeout, what, details, probe)
        time.sleep(every)


async def eventually_async(
    probe: Callable[[], T | None],
    *,
    timeout: float = 5.0,
    what: str | Callable[[], str] = "",
    details: Callable[[], str] | None = None,
    every: float = 0.005,
) -> T:
    """``eventually`` on the running event loop: the probe is checked between its turns."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise _failure(timeout, what, details, probe)
        await asyncio.sleep(every)
