"""A fake provider served from its own thread, for synchronous code and other processes' tests.

The demo and the cluster tests start fakes beside kube-apiserver and runner processes from
plain synchronous code; this runs the server's event loop in a daemon thread and hands faults
and counters across the thread boundary safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from llmagents.testing.fake_providers.faults import FaultPlan

if TYPE_CHECKING:
    from llmagents.testing.fake_providers.server import FakeProviderServer

T = TypeVar("T")


class ThreadedFake:
    """A fake provider served from its own thread; stop it with ``stop()`` or ``with``."""

    def __init__(self, server: FakeProviderServer, *, start_timeout: float = 10.0) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"fake-{server.protocol}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(start_timeout):
            raise TimeoutError(f"fake {server.protocol} provider did not start")
        if self._error is not None:
            raise self._error

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def url(self) -> str:
        return self.server.url

    def set_faults(self, plan: FaultPlan) -> None:
        def replace() -> None:
            self.server.faults = plan

        self._call(replace)

    def update_faults(self, **changes: Any) -> FaultPlan:
        return self._call(lambda: self.server.core.update(changes))

    def stats(self) -> dict[str, Any]:
        return self._call(lambda: self.server.core.stats.to_dict())

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()
