"""The engine's sense of time, injected so that tests control it exactly.

The engine never reads time or sleeps on its own: it asks a monotonic ``Clock`` for elapsed
time (breaker recovery, backoff, deadlines, latency), a ``WallClock`` for UTC calendar time
(budget periods, the timestamps it records) and awaits a ``Sleep`` between retries. In
production these are ``time.monotonic``, ``utc_now`` and ``asyncio.sleep``; tests pass a fake
whose sleep advances its clock, so a ten-minute breaker recovery runs in microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], float]
"""Monotonic seconds; only differences between two readings mean anything."""

WallClock = Callable[[], datetime]
"""The current time as an aware UTC datetime."""

Sleep = Callable[[float], Awaitable[None]]
"""Wait the given number of seconds."""

monotonic: Clock = time.monotonic
sleep: Sleep = asyncio.sleep


def utc_now() -> datetime:
    """The real wall clock, in UTC."""
    return datetime.now(UTC)


def to_wall(instant: float, *, now: float, wall_now: datetime) -> datetime:
    """The wall time of a monotonic ``instant``, given one reading of both clocks."""
    return wall_now + timedelta(seconds=instant - now)


def to_monotonic(when: datetime, *, now: float, wall_now: datetime) -> float:
    """The monotonic instant of a wall time, given one reading of both clocks."""
    return now + (when - wall_now).total_seconds()
