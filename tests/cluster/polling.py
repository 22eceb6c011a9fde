"""Waiting for the cluster to reach a state: poll with a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from llmagents.testing._components import free_port

T = TypeVar("T")

__all__ = ["eventually", "free_port"]


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    what: str | Callable[[], str] = "",
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test at the deadline.

    ``what`` names the awaited state (a callable is evaluated only on failure, so it may
    read logs); ``details`` adds diagnostics to the failure message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what() if callable(what) else what or repr(probe)
            extra = f"\n{details()}" if details is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {name}{extra}")
        time.sleep(0.2)
