"""Kubernetes Events for the runner and the operator: ``EventRecorder`` aggregates and writes
them in the background (``recorder``); ``sink`` holds what they are about, where they go and
how a series is named and found again after a restart."""

from llmagents.events.recorder import NOTE_LIMIT, EventRecorder
from llmagents.events.sink import (
    EVENTS_API_VERSION,
    EventExists,
    EventGone,
    EventSink,
    EventType,
    ExistingSeries,
    MemoryEventSink,
    Regarding,
    event_name,
    existing_series,
    micro_time,
    series_digest,
)

__all__ = [
    "EVENTS_API_VERSION",
    "NOTE_LIMIT",
    "EventExists",
    "EventGone",
    "EventRecorder",
    "EventSink",
    "EventType",
    "ExistingSeries",
    "MemoryEventSink",
    "Regarding",
    "event_name",
    "existing_series",
    "micro_time",
    "series_digest",
]
