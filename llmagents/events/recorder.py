"""Kubernetes Events (``events.k8s.io/v1``) that tell what happened, without flooding or waiting.

The runner and the operator record Events on the objects they own (``CircuitOpened`` on an
LLMAgent, a fleet-wide ``CircuitOpened`` on its ProviderPool) so that ``kubectl describe``
and ``kubectl get events`` show what a user looks for first. Recording is a plain method
call that never waits and never raises: a background task writes.

Repeats are aggregated the way client-go's ``events`` package does it: an Event like one
already written (same object, type, reason, action and key) within ``series_ttl`` becomes
part of that Event's ``series`` (count and last observation) instead of a new object, and
the series is patched at most once per ``series_interval``. So a provider that keeps falling
back to another costs one Event and at most one patch a minute, whatever the call rate.
The note is the first occurrence's: the API server refuses to change anything of an Event
but its series.

Aggregation survives a restart of the process: before its first write about an object, the
recorder lists its controller's Events about that object (one request, a field selector) and
continues each series it finds there (``sink``: names tell series apart), and counts what
was written in the last minute against its write bound.

Writes are bounded: at most ``per_minute`` API requests per recorder (a token bucket);
beyond it, series updates wait and distinct new Events queue up to ``max_pending``, after
which they are dropped and counted (``dropped``), never blocking the work. Write failures
are logged (rate-limited) and retried a few times, then given up.

Where Events go is an ``EventSink``: the runner's Kubernetes client (``runner.events``) or
the operator's (``operator.cluster_api``); tests use ``MemoryEventSink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmagents.events.sink import (
    EVENTS_API_VERSION,
    EventExists,
    EventGone,
    EventSink,
    EventType,
    ExistingSeries,
    Regarding,
    event_name,
    existing_series,
    micro_time,
    series_digest,
)
from llmagents.routing import clock as clocks

logger = logging.getLogger(__name__)

NOTE_LIMIT = 1024
"""The API server refuses an Event note longer than 1 kB."""
_MAX_FAILURES = 5
_MAX_LOOKUPS = 1024
"""Objects whose existing Events are remembered at once (least recently used go first)."""


@dataclass(slots=True)
class _Series:
    regarding: Regarding
    type: EventType
    reason: str
    action: str
    key: str
    note: str
    first: datetime
    last: datetime
    last_seen: float
    count: int = 1
    written: int = 0
    """Of ``count``, what the API server has; 0 before the Event exists."""
    base: int = 0
    """The count the Event had before this process continued it (after a restart)."""
    name: str | None = None
    patched_at: float = -1e18
    failures: int = 0


class EventRecorder:
    """Records Events for one controller instance; see the module docstring."""

    def __init__(
        self,
        sink: EventSink,
        *,
        controller: str,
        instance: str,
        per_minute: int = 30,
        series_interval: float = 60.0,
        series_ttl: float = 360.0,
        max_pending: int = 256,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.sink = sink
        self.controller = controller
        self.instance = instance[:128]
        self.per_minute = per_minute
        self.series_interval = series_interval
        self.series_ttl = series_ttl
        self.max_pending = max_pending
        self._clock = clock
        self._wall_clock = wall_clock
        self._redact = redact
        self._series: OrderedDict[tuple[Any, ...], _Series] = OrderedDict()
        self._existing: OrderedDict[Regarding, dict[str, ExistingSeries]] = OrderedDict()
        """Per object looked up: its Events on the API server not yet continued, by digest."""
        self._lookup_failures: dict[Regarding, int] = {}
        self._tokens = float(per_minute)
        self._refilled = clock()
        self._wake = asyncio.Event()
        self._closed = False
        self._warned_at = -1e18
        self.dropped = 0
        """Events not written: the pending queue was full, or writing failed for good."""

    # -- recording (synchronous, never raises) ------------------------------------------------

    def record(
        self,
        regarding: Regarding,
        *,
        reason: str,
        note: str,
        type: EventType = EventType.NORMAL,
        action: str | None = None,
        key: str = "",
    ) -> None:
        """Record one occurrence; an Event like it within ``series_ttl`` counts it instead.

        ``key`` separates Events of the same reason (the provider, the pair fallen between).
        """
        try:
            self._record(regarding, reason, note, type, action or reason, key)
        except Exception:  # an Event must never break the work that reports it
            logger.exception("recording event %s failed", reason)

    def _record(
        self, regarding: Regarding, reason: str, note: str, type: EventType, action: str, key: str
    ) -> None:
        now, wall = self._clock(), self._wall_clock()
        note = self._redact(note)[:NOTE_LIMIT]
        ident = (regarding, type, reason, action, key)
        series = self._series.get(ident)
        if series is not None and now - series.last_seen < self.series_ttl:
            series.count += 1
            series.last, series.last_seen, series.note = wall, now, note
        else:
            if series is None and len(self._series) >= self.max_pending and not self._evict():
                self.dropped += 1
                self._warn(f"event queue full; dropped {reason} for {regarding.name}")
                return
            self._series[ident] = _Series(regarding, type, reason, action, key, note, wall, wall,
                                          now)  # fmt: skip
            self._series.move_to_end(ident)
        self._wake.set()

    def _evict(self) -> bool:
        """Forget one series that is fully written and quiet; False if none is."""
        now = self._clock()
        for ident, series in self._series.items():
            if series.written == series.count and now - series.last_seen >= self.series_ttl:
                del self._series[ident]
                return True
        for ident, series in self._series.items():
            if series.written == series.count:
                del self._series[ident]
                return True
        return False

    # -- writing (background) -------------------------------------------------------------------

    async def run(self) -> None:
        """Write recorded Events until ``close()``; a bug in one round never ends the loop."""
        while not self._closed:
            # Cleared before writing: an Event recorded while a write is awaited wakes the
            # next round instead of waiting for the one after.
            self._wake.clear()
            try:
                delay = await self.write_due()
            except Exception:
                logger.exception("writing events failed; retrying in 10s")
                delay = 10.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def write_due(self) -> float | None:
        """Write what is due now; returns seconds until more is due (None: nothing pending)."""
        next_due: float | None = None

        def later(wait: float) -> None:
            nonlocal next_due
            next_due = wait if next_due is None else min(next_due, wait)

        for series in list(self._series.values()):
            due = self._due_in(series)
            if due is None:
                continue
            if due > 0:
                later(due)
                continue
            if series.name is None and series.regarding not in self._existing:
                # A first write about this object in this process: what exists already?
                if not self._take_token():
                    later(self._token_wait())
                    continue
                if not await self._look_up(series):
                    later(max(self._due_in(series) or 0.0, 0.05))
                    continue
            if not self._take_token():
                later(self._token_wait())
                continue
            await self._write(series)
            after = self._due_in(series)  # failed, or counted again meanwhile
            if after is not None:
                later(max(after, 0.05))
        return next_due

    async def _look_up(self, series: _Series) -> bool:
        """List this controller's Events about ``series.regarding`` (one request): the series
        to continue, and the writes of the last minute, which count against the bound.
        False when the list failed and will be retried (the series backs off)."""
        regarding = series.regarding
        try:
            items = await self.sink.list_events(regarding.namespace,
                                         regarding.field_selector(self.controller))  # fmt: skip
        except Exception as error:
            failures = self._lookup_failures.get(regarding, 0) + 1
            self._lookup_failures[regarding] = failures
            self._warn(f"listing events of {regarding.name} failed ({failures} times): {error}")
            if failures < _MAX_FAILURES:
                series.failures += 1
                series.patched_at = self._clock()
                return False
            items = []  # go on without: new Events rather than none
            series.failures = 0  # the write gets its own tries
        self._lookup_failures.pop(regarding, None)
        found = existing_series(regarding, items)
        wall = self._wall_clock()
        recent = sum(1 for e in found.values() for at in {e.first, e.last}
                     if (wall - at).total_seconds() < 60)  # fmt: skip
        self._tokens = max(0.0, self._tokens - recent)
        self._existing[regarding] = found
        while len(self._existing) > _MAX_LOOKUPS:
            self._existing.popitem(last=False)
        return True

    def _due_in(self, series: _Series) -> float | None:
        if series.written >= series.count:
            return None
        if series.name is None:
            return 0.0 if series.failures == 0 else 2.0**series.failures - self._since(series)
        return series.patched_at + self.series_interval - self._clock()

    def _since(self, series: _Series) -> float:
        return self._clock() - series.patched_at

    def _continue_existing(self, series: _Series) -> None:
        """Make ``series`` continue the Event of its kind found on the API server, if that
        one was observed within ``series_ttl`` of this series' first occurrence."""
        found = self._existing.get(series.regarding)
        if found is None:
            return
        self._existing.move_to_end(series.regarding)
        digest = self._digest(series)
        existing = found.pop(digest, None)
        if existing is not None and (series.first - existing.last).total_seconds() < (
            self.series_ttl
        ):
            series.name, series.base = existing.name, existing.count
            series.first = existing.first

    def _digest(self, series: _Series) -> str:
        return series_digest(self.controller, series.regarding, series.type, series.reason,
                             series.action, series.key)  # fmt: skip

    async def _write(self, series: _Series) -> None:
        count = series.count
        namespace = series.regarding.namespace
        try:
            if series.name is None:
                self._continue_existing(series)
            if series.name is None:
                digest = self._digest(series)
                name = event_name(series.regarding, digest, series.first)
                with contextlib.suppress(EventExists):  # ours, from a try whose answer was lost
                    await self.sink.create(namespace, self._body(series, name))
                series.name = name
            else:
                await self.sink.patch(namespace, series.name,
                                      {"series": self._wire_series(series)})  # fmt: skip
        except EventGone:
            series.name = None  # expired on the server (events live an hour): create anew
            series.written = series.base = 0
            return
        except Exception as error:
            series.failures += 1
            series.patched_at = self._clock()
            self._warn(f"writing event {series.reason} for {series.regarding.name} failed "
                       f"({series.failures} times): {error}")  # fmt: skip
            if series.failures >= _MAX_FAILURES:
                # Give up on this occurrence; the next one tries again.
                self.dropped += 1
                series.written, series.failures = series.count, 0
            return
        series.failures = 0
        series.written = count
        series.patched_at = self._clock()

    def _body(self, series: _Series, name: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": EVENTS_API_VERSION,
            "kind": "Event",
            "metadata": {"name": name, "namespace": series.regarding.namespace},
            "eventTime": micro_time(series.first),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": series.action,
            "reason": series.reason,
            "regarding": series.regarding.to_wire(),
            "note": series.note,
            "type": series.type.value,
        }
        if series.base + series.count > 1:
            body["series"] = self._wire_series(series)
        return body

    @staticmethod
    def _wire_series(series: _Series) -> dict[str, Any]:
        return {"count": series.base + series.count, "lastObservedTime": micro_time(series.last)}

    def _take_token(self) -> bool:
        now = self._clock()
        self._tokens = min(
            float(self.per_minute), self._tokens + (now - self._refilled) * self.per_minute / 60
        )
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _token_wait(self) -> float:
        return max(0.0, (1 - self._tokens) * 60 / self.per_minute)

    def _warn(self, message: str) -> None:
        now = self._clock()
        if now - self._warned_at >= 60:
            self._warned_at = now
            logger.warning("%s (%d dropped so far)", message, self.dropped)
        else:
            logger.debug(message)

    async def flush(self, timeout: float) -> None:
        """Write what is pending now (first occurrences only wait for the rate), bounded."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for series in list(self._series.values()):
                    if series.written < series.count and series.failures == 0:
                        if series.name is None and series.regarding not in self._existing:
                            await self._look_up(series)
                        await self._write(series)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
