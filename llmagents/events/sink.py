"""What an Event is about, where Events are written, and how a series is named and found again.

Events of one series (same object, type, reason, action and key) are named
``<object>.<digest>.<stamp>``: the digest is of the series' identity, the stamp is the
first observation's time. The name alone tells which series an Event continues, so a
process that restarts lists its controller's Events about an object (one request, with a
field selector) and picks up each series where it was (``existing_series``), instead of
starting a second Event for the same thing. A create retried after an answer was lost
finds its own Event already there (``EventExists``) rather than writing a second one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

EVENTS_API_VERSION = "events.k8s.io/v1"
_DIGEST_CHARS = 12
_NAME_PART = 200
"""Characters of the object's name in an Event's name, leaving room for digest and stamp
within the 253 a name may have."""


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

    def field_selector(self, controller: str) -> str:
        """The API server's selector of ``controller``'s Events about this object."""
        selector = (f"regarding.kind={self.kind},regarding.name={self.name},"
                    f"reportingController={controller}")  # fmt: skip
        return selector + (f",regarding.uid={self.uid}" if self.uid else "")


class EventGone(Exception):
    """The Event to patch no longer exists (the API server deletes Events an hour after
    their last write)."""


class EventExists(Exception):
    """An Event of that name exists already (a create whose answer was lost, retried)."""


class EventSink(Protocol):
    """Reads and writes Events. ``create`` raises ``EventExists`` for a name taken, ``patch``
    ``EventGone`` for an Event gone; any other exception is a failure the recorder retries."""

    async def create(self, namespace: str, body: dict[str, Any]) -> None: ...

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None: ...

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]: ...


def micro_time(at: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def series_digest(
    controller: str, regarding: Regarding, type_: EventType, reason: str, action: str, key: str
) -> str:
    """The part of a series' Event names that says which series it is: of the writer, the
    object (by uid: an object made again under the same name is another), and the kind."""
    identity = "\x00".join((controller, regarding.kind, regarding.uid or regarding.name,
                             type_.value, reason, action, key)).encode()  # fmt: skip
    return hashlib.sha256(identity).hexdigest()[:_DIGEST_CHARS]


def event_name(regarding: Regarding, digest: str, first: datetime) -> str:
    """The name of a series' Event first observed at ``first``."""
    return f"{regarding.name[:_NAME_PART]}.{digest}.{int(first.timestamp() * 1_000_000):x}"


@dataclass(frozen=True, slots=True)
class ExistingSeries:
    """An Event found on the API server: its name, count and latest observation."""

    name: str
    count: int
    last: datetime
    first: datetime


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def existing_series(regarding: Regarding, items: list[dict[str, Any]]) -> dict[str, ExistingSeries]:
    """The latest Event of each series among ``items`` (a list of Events about
    ``regarding``), by digest. Events named otherwise (another writer's) are left out."""
    prefix = f"{regarding.name[:_NAME_PART]}."
    found: dict[str, ExistingSeries] = {}
    for item in items:
        name = str((item.get("metadata") or {}).get("name") or "")
        parts = name.removeprefix(prefix).split(".") if name.startswith(prefix) else []
        if len(parts) != 2 or len(parts[0]) != _DIGEST_CHARS:
            continue
        first = _when(item.get("eventTime"))
        if first is None:
            continue
        series = item.get("series") or {}
        last = _when(series.get("lastObservedTime")) or first
        known = found.get(parts[0])
        if known is None or last > known.last:
            found[parts[0]] = ExistingSeries(name, int(series.get("count") or 1), last, first)
    return found


class MemoryEventSink:
    """Keeps Events as the API server would: by name, with their series, refusing a second
    create of a name and a patch of anything but the series; for tests."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.lists = 0

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        self.requests += 1
        name = body["metadata"]["name"]
        if name in self.events:
            raise EventExists(name)
        self.events[name] = body

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.requests += 1
        if name not in self.events:
            raise EventGone(name)
        if set(patch) - {"series"}:
            # events.k8s.io/v1 validation: everything but the series is immutable.
            raise ValueError(f"Event {name}: {sorted(set(patch) - {'series'})} are immutable")
        self.events[name] = {**self.events[name], **patch}

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self.requests += 1
        self.lists += 1
        wanted = dict(term.split("=", 1) for term in field_selector.split(","))

        def matches(event: dict[str, Any]) -> bool:
            regarding = event["regarding"]
            have = {f"regarding.{k}": v for k, v in regarding.items()}
            have["reportingController"] = event["reportingController"]
            return all(have.get(k) == v for k, v in wanted.items())

        return [e for e in self.events.values() if matches(e)]

    def by_reason(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["reason"] == reason]
