"""Kubernetes Events: series aggregation, the write bound, failures, and what the runner records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from llmagents.events import EventGone, EventRecorder, EventType, MemoryEventSink, Regarding
from llmagents.routing import CallTask
from llmagents.runner.tasks import task_request

from .conftest import PRIMARY_KEY, Edges, Fakes, config

AGENT = Regarding("llmagents.dev/v1alpha1", "LLMAgent", "ns", "agent-a", "uid-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> float:
        return self.now

    def wall_clock(self) -> datetime:
        return self.wall + timedelta(seconds=self.now - 1000.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def recorder(sink: Any, clock: Clock, **options: Any) -> EventRecorder:
    return EventRecorder(sink, controller="llmagents.dev/runner", instance="pod-1",
                         clock=clock, wall_clock=clock.wall_clock, **options)  # fmt: skip


async def test_a_first_event_is_written_at_once_in_the_events_v1_shape() -> None:
    sink, clock = MemoryEventSink(), Clock()
    events = recorder(sink, clock)
    events.record(AGENT, reason="CircuitOpened", note="provider a: open", type=EventType.WARNING)
    assert await events.write_due() is None
    (event,) = sink.events.values()
    assert event["apiVersion"] == "events.k8s.io/v1"
    assert event["metadata"]["name"].startswith("agent-a.")
    assert event["eventTime"] == "2026-12-04T12:00:00.000000Z"
    assert (event["reason"], event["action"], event["type"]) == (
        "CircuitOpened",
        "CircuitOpened",
        "Warning",
    )
    assert event["regarding"] == {
        "apiVersion": "llmagents.dev/v1alpha1",
        "kind": "LLMAgent",
        "namespace": "ns",
        "name": "agent-a",
        "uid": "uid-1",
    }
    assert (event["reportingController"], event["reportingInstance"]) == (
        "llmagents.dev/runner",
        "pod-1",
    )
    assert "series" not in event


async def test_repeats_become_one_series_patched_at_most_once_a_minute() -> None:
    sink, clock = MemoryEventSink(), Clock()
    events = recorder(sink, clock)
    for i in range(500):  # a provider pair falling back on every call, 10 calls a second
        events.record(AGENT, reason="FellBack", note=f"a to b ({i})", key="a>b")
        await events.write_due()
        clock.advance(0.1)
    # 50 s: the look for Events of an earlier run, the first occurrence, nothing else yet.
    assert (sink.lists, sink.requests) == (1, 2)
    clock.advance(10.5)
    await events.write_due()
    (event,) = sink.events.values()
    assert event["series"]["count"] == 500
    # The series alone is patched: the API server refuses a changed note.
    assert event["note"] == "a to b (0)"
    assert sink.requests == 3
    # Another pair, or another reason, is another Event.
    events.record(AGENT, reason="FellBack", note="b to c", key="b>c")
    await events.write_due()
    assert len(sink.events) == 2


async def test_an_event_after_a_quiet_spell_starts_a_new_series() -> None:
    sink, clock = MemoryEventSink(), Clock()
    events = recorder(sink, clock, series_ttl=360.0)
    events.record(AGENT, reason="CircuitOpened", note="open", key="a")
    await events.write_due()
    clock.advance(400.0)
    events.record(AGENT, reason="CircuitOpened", note="open again", key="a")
    await events.write_due()
    assert [e["note"] for e in sink.events.values()] == ["open", "open again"]


async def test_writes_are_bounded_per_minute_and_a_full_queue_drops_never_blocks() -> None:
    sink, clock = MemoryEventSink(), Clock()
    events = recorder(sink, clock, per_minute=5, max_pending=20)
    for i in range(40):  # 40 distinct events at one instant
        events.record(AGENT, reason="ProviderMisconfigured", note=f"p{i}", key=f"p{i}")
    assert events.dropped == 20  # the queue holds 20; recording returned at once each time
    wait = await events.write_due()
    # The look for an earlier run's Events is a request too.
    assert sink.requests == 5 and len(sink.events) == 4 and wait is not None and 0 < wait <= 12
    clock.advance(60.0)
    await events.write_due()
    assert sink.requests == 10  # five more a minute, never a burst


class Failing(MemoryEventSink):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        if self.down:
            raise OSError("connection refused")
        await super().create(namespace, body)


async def test_a_failed_write_is_retried_with_backoff_and_recording_never_raises() -> None:
    sink, clock = Failing(), Clock()
    events = recorder(sink, clock)
    events.record(AGENT, reason="BudgetLow", note="80%")
    wait = await events.write_due()
    assert sink.events == {} and wait is not None and wait > 0
    sink.down = False
    clock.advance(wait)
    await events.write_due()
    assert len(sink.by_reason("BudgetLow")) == 1


async def test_a_series_whose_event_expired_is_created_anew() -> None:
    sink, clock = MemoryEventSink(), Clock()
    events = recorder(sink, clock)
    events.record(AGENT, reason="FellBack", note="x", key="a>b")
    await events.write_due()
    sink.events.clear()  # the API server deleted it (events live an hour)
    events.record(AGENT, reason="FellBack", note="x", key="a>b")
    clock.advance(61.0)
    await events.write_due()  # the patch finds it gone
    await events.write_due()  # and creates it again, with its count
    (event,) = sink.events.values()
    assert event["series"]["count"] == 2
    assert issubclass(EventGone, Exception)


async def test_a_runner_records_fallbacks_breakers_and_misconfiguration_without_keys(
    fakes: Fakes, edges: Edges
) -> None:
    sink = MemoryEventSink()
    events = EventRecorder(sink, controller="llmagents.dev/runner", instance="pod-1",
                           redact=lambda text: text.replace(PRIMARY_KEY, "[redacted]"))  # fmt: skip
    runner = edges.runner(config(fakes, tasks=None), events=events)
    await runner.start()
    try:
        fakes.primary.core.update({"outage": True})
        for _ in range(3):  # maxFailures is 2: the breaker opens, calls fall back meanwhile
            await runner.engine.complete(task_request_for("hello"), CallTask(input_tokens=5))
        # A misconfiguration whose message would carry the key.
        runner.engine.manager._states["fallback"].misconfigured = f"auth: bad key {PRIMARY_KEY}"
        runner.agent_events.providers_checked({"fallback": f"auth: bad key {PRIMARY_KEY}"})
        await events.write_due()
    finally:
        await runner.close()
    reasons = {e["reason"] for e in sink.events.values()}
    assert {"FellBack", "CircuitOpened", "ProviderMisconfigured"} <= reasons
    (opened,) = sink.by_reason("CircuitOpened")
    assert opened["type"] == "Warning" and "provider primary: circuit open until" in opened["note"]
    (fell,) = sink.by_reason("FellBack")
    assert "fell back from primary to fallback" in fell["note"]
    (bad,) = sink.by_reason("ProviderMisconfigured")
    assert PRIMARY_KEY not in bad["note"] and "[redacted]" in bad["note"]
    assert all(PRIMARY_KEY not in str(e) for e in sink.events.values())


def task_request_for(prompt: str) -> Any:
    from llmagents.api.work import TaskSpec

    return task_request(TaskSpec(name="t", prompt=prompt))


async def test_budget_low_and_exhausted_are_recorded_once_per_period(
    fakes: Fakes, edges: Edges
) -> None:
    sink = MemoryEventSink()
    events = EventRecorder(sink, controller="c", instance="i")
    runner = edges.runner(config(fakes, tasks=None, budget={"limit": 0.5, "onExhausted": "stop"}),
                          events=events)  # fmt: skip
    manager = runner.engine.manager
    assert manager.budget is not None
    manager.budget.charge(0.41)  # as if earlier calls had spent it
    runner.agent_events.on_cost("primary", None, 0.01)  # type: ignore[arg-type]
    runner.agent_events.on_cost("primary", None, 0.01)  # type: ignore[arg-type]
    manager.budget.charge(0.2)
    runner.agent_events.on_cost("primary", None, 0.01)  # type: ignore[arg-type]
    await events.write_due()
    assert [e["reason"] for e in sink.events.values()] == ["BudgetLow", "BudgetExhausted"]
    await runner.close()
    await asyncio.sleep(0)


class Slow(MemoryEventSink):
    """An API server that takes a while to answer each write."""

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)
        await super().create(namespace, body)


async def test_an_event_recorded_while_another_is_written_is_written_without_waiting() -> None:
    sink = Slow()
    events = EventRecorder(sink, controller="c", instance="i")
    job = asyncio.create_task(events.run())
    events.record(AGENT, reason="CircuitOpened", note="a", key="a")
    await asyncio.sleep(0.02)  # the first write is in flight
    events.record(AGENT, reason="CircuitOpened", note="b", key="b")
    async with asyncio.timeout(5):
        while len(sink.events) < 2:
            await asyncio.sleep(0.01)
    events.close()
    await job


async def test_a_budget_with_no_room_left_for_a_call_is_exhausted_as_the_budget_says(
    fakes: Fakes, edges: Edges
) -> None:
    sink = MemoryEventSink()
    events = EventRecorder(sink, controller="c", instance="i")
    runner = edges.runner(config(fakes, tasks=None, budget={"limit": 0.5}), events=events)
    budget = runner.engine.manager.budget
    assert budget is not None
    budget.charge(0.3)  # 60%: not low yet
    runner.agent_events.budget_checked()
    budget.mark_full()  # a paid call found no room in the $0.20 left
    runner.agent_events.budget_checked()
    runner.agent_events.budget_checked()
    await events.write_due()
    assert [e["reason"] for e in sink.events.values()] == ["BudgetExhausted"]
    await runner.close()


async def test_a_restarted_recorder_continues_the_series_it_finds_on_the_api_server() -> None:
    sink, clock = MemoryEventSink(), Clock()
    before = recorder(sink, clock)
    for _ in range(3):
        before.record(AGENT, reason="FellBack", note="a to b", key="a>b")
    before.record(AGENT, reason="CircuitOpened", note="a open", key="a",
                  type=EventType.WARNING)  # fmt: skip
    await before.write_due()
    clock.advance(30.0)
    # The process restarts: a new recorder, another pod name, nothing in memory.
    after = EventRecorder(sink, controller="llmagents.dev/runner", instance="pod-2",
                          clock=clock, wall_clock=clock.wall_clock)  # fmt: skip
    after.record(AGENT, reason="FellBack", note="a to b", key="a>b")
    after.record(AGENT, reason="FellBack", note="b to c", key="b>c")
    requests = sink.requests
    await after.write_due()
    # One list for the agent, one patch continuing a>b, one create for b>c.
    assert sink.requests - requests == 3 and sink.lists == 2
    (ab,) = [e for e in sink.by_reason("FellBack") if e["note"] == "a to b"]
    assert ab["series"]["count"] == 4
    assert ab["reportingInstance"] == "pod-1"  # immutable: the Event's first writer
    assert len(sink.by_reason("FellBack")) == 2 and len(sink.by_reason("CircuitOpened")) == 1


async def test_after_a_restart_and_a_quiet_spell_a_new_series_starts() -> None:
    sink, clock = MemoryEventSink(), Clock()
    before = recorder(sink, clock, series_ttl=360.0)
    before.record(AGENT, reason="CircuitOpened", note="open", key="a")
    await before.write_due()
    clock.advance(400.0)
    after = recorder(sink, clock, series_ttl=360.0)
    after.record(AGENT, reason="CircuitOpened", note="open again", key="a")
    await after.write_due()
    assert sorted(e["note"] for e in sink.events.values()) == ["open", "open again"]
    assert all("series" not in e for e in sink.events.values())


async def test_another_agents_events_or_an_agent_of_the_same_name_are_not_continued() -> None:
    sink, clock = MemoryEventSink(), Clock()
    first = recorder(sink, clock)
    first.record(AGENT, reason="FellBack", note="x", key="a>b")
    await first.write_due()
    # The agent was deleted and made again: same name, another uid.
    again = Regarding("llmagents.dev/v1alpha1", "LLMAgent", "ns", "agent-a", "uid-2")
    second = recorder(sink, clock)
    second.record(again, reason="FellBack", note="x", key="a>b")
    await second.write_due()
    assert len(sink.events) == 2
    assert all("series" not in e for e in sink.events.values())


async def test_writes_of_the_last_minute_before_a_restart_count_against_the_bound() -> None:
    sink, clock = MemoryEventSink(), Clock()
    before = recorder(sink, clock, per_minute=6)
    for i in range(5):
        before.record(AGENT, reason="ProviderMisconfigured", note=f"p{i}", key=f"p{i}")
    await before.write_due()
    assert len(sink.events) == 5
    clock.advance(5.0)  # crashes and restarts at once
    after = recorder(sink, clock, per_minute=6)
    for i in range(5, 10):
        after.record(AGENT, reason="ProviderMisconfigured", note=f"p{i}", key=f"p{i}")
    wait = await after.write_due()
    # Six a minute: its list and the five creates of a minute ago leave nothing now.
    assert len(sink.events) == 5 and wait is not None and wait > 0
    clock.advance(60.0)
    await after.write_due()
    assert len(sink.events) == 10


class LostAnswer(MemoryEventSink):
    """Creates the Event, then the connection drops before the answer arrives, once."""

    def __init__(self) -> None:
        super().__init__()
        self.lose = True

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        await super().create(namespace, body)
        if self.lose:
            self.lose = False
            raise OSError("connection reset")


async def test_a_create_whose_answer_was_lost_is_not_written_twice() -> None:
    sink, clock = LostAnswer(), Clock()
    events = recorder(sink, clock)
    events.record(AGENT, reason="BudgetLow", note="80%")
    wait = await events.write_due()
    assert wait is not None
    clock.advance(wait)
    assert await events.write_due() is None  # the retry finds its Event there: written
    assert len(sink.events) == 1


class ListFails(Failing):
    """An API server that refuses the list (a Role without it) and, at first, the create."""

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self.lists += 1
        raise OSError("forbidden")


async def test_events_are_written_even_when_the_look_for_earlier_ones_keeps_failing() -> None:
    sink, clock = ListFails(), Clock()
    events = recorder(sink, clock)
    events.record(AGENT, reason="CircuitOpened", note="open", key="a")
    for i in range(20):
        sink.down = i < 6  # the create fails once after the lists gave up, then works
        wait = await events.write_due()
        if wait is None:
            break
        clock.advance(wait)
    assert sink.lists == 5 and len(sink.events) == 1 and events.dropped == 0
