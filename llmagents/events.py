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
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from llmagents.routing import clock as clocks

logger = logging.getLogger(__name__)

EVENTS_API_VERSION = "events.k8s.io/v1"
NOTE_LIMIT = 1024
"""The API server refuses an Event note longer than 1 kB."""
_MAX_FAILURES = 5


class EventType(StrEnum):
    """Kubernetes' two Event types."""

    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class Regarding:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str | None = None

    def to_wire(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind,
               "namespace": self.namespace, "name": self.name}  # fmt: skip
        if self.uid:
            ref["uid"] = self.uid
        return ref


class EventGone(Exception):
    """The Event to patch no longer exists (the API server deletes Events after an hour)."""


class EventSink(Protocol):
    """Writes Events; raises ``EventGone`` when a patched Event is gone and any other
    exception on failure, which the recorder retries."""

    async def create(self, namespace: str, body: dict[str, Any]) -> None: ...

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None: ...


class MemoryEventSink:
    """Keeps Events as the API server would: by name, with their series; for tests."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.requests = 0

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        self.requests += 1
        self.events[body["metadata"]["name"]] = body

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.requests += 1
        if name not in self.events:
            raise EventGone(name)
        self.events[name] = {**self.events[name], **patch}

    def by_reason(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["reason"] == reason]


def micro_time(at: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class _Series:
    regarding: Regarding
    type: EventType
    reason: str
    action: str
    note: str
    first: datetime
    last: datetime
    last_seen: float
    count: int = 1
    written: int = 0
    """The count the API server has; 0 before the Event exists."""
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
            self._series[ident] = _Series(regarding, type, reason, action, note, wall, wall, now)
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
        for series in list(self._series.values()):
            due = self._due_in(series)
            if due is None:
                continue
            if due > 0 or not self._take_token():
                wait = max(due, self._token_wait())
                next_due = wait if next_due is None else min(next_due, wait)
                continue
            await self._write(series)
            after = self._due_in(series)  # failed, or counted again meanwhile
            if after is not None:
                wait = max(after, 0.05)
                next_due = wait if next_due is None else min(next_due, wait)
        return next_due

    def _due_in(self, series: _Series) -> float | None:
        if series.written >= series.count:
            return None
        if series.name is None:
            return 0.0 if series.failures == 0 else 2.0**series.failures - self._since(series)
        return series.patched_at + self.series_interval - self._clock()

    def _since(self, series: _Series) -> float:
        return self._clock() - series.patched_at

    async def _write(self, series: _Series) -> None:
        count = series.count
        try:
            if series.name is None:
                name = f"{series.regarding.name}.{secrets.token_hex(8)}"
                await self.sink.create(series.regarding.namespace, self._body(series, name))
                series.name = name
            else:
                await self.sink.patch(
                    series.regarding.namespace, series.name, {"series": self._wire_series(series),
                                                              "note": series.note},
                )  # fmt: skip
        except EventGone:
            series.name = None  # expired on the server (events live an hour): create anew
            series.written = 0
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
        if series.count > 1:
            body["series"] = self._wire_series(series)
        return body

    @staticmethod
    def _wire_series(series: _Series) -> dict[str, Any]:
        return {"count": series.count, "lastObservedTime": micro_time(series.last)}

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
                        await self._write(series)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
