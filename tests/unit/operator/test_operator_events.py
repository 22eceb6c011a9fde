"""The operator's Events: suspension of an agent, and the fleet's view of a pool's providers."""

from __future__ import annotations

from datetime import UTC, datetime

from operator_samples import pool_body

from llmagents.api.pool_status import PoolProviderStatus
from llmagents.api.status import Condition, ConditionStatus, Phase
from llmagents.events import EventRecorder, MemoryEventSink
from llmagents.operator.events import OperatorEvents
from llmagents.operator.objects import AgentObject, PoolObject


def _provider(name: str, agents: int, open_breakers: int) -> PoolProviderStatus:
    return PoolProviderStatus(name=name, healthy=open_breakers == 0, agents=agents,
                              open_breakers=open_breakers,
                              open_since=datetime(2030, 1, 1, tzinfo=UTC) if open_breakers else None)  # fmt: skip


async def test_a_provider_open_for_half_the_agents_is_one_warning_on_the_pool_and_closes_once():
    sink = MemoryEventSink()
    events = OperatorEvents(EventRecorder(sink, controller="c", instance="i"))
    pool = PoolObject.from_body(pool_body())
    events.pool_providers(pool, None, [_provider("claude", 4, 1)])  # one of four: not the fleet
    events.pool_providers(pool, [_provider("claude", 4, 1)], [_provider("claude", 4, 2)])
    events.pool_providers(pool, [_provider("claude", 4, 2)], [_provider("claude", 4, 3)])
    events.pool_providers(pool, [_provider("claude", 4, 3)], [_provider("claude", 4, 0)])
    await events.recorder.write_due()
    opened, closed = sink.by_reason("CircuitOpened"), sink.by_reason("CircuitClosed")
    assert len(opened) == 1 and len(closed) == 1
    assert opened[0]["type"] == "Warning" and opened[0]["regarding"]["kind"] == "ProviderPool"
    assert "claude: circuit open for 2 of 4 agents since 2030-01-01T00:00:00Z" in opened[0]["note"]


async def test_a_price_becoming_unknown_and_known_again_are_events_on_the_pool_once_each():
    sink = MemoryEventSink()
    events = OperatorEvents(EventRecorder(sink, controller="c", instance="i"))
    pool = PoolObject.from_body(pool_body())
    at = datetime(2030, 1, 1, tzinfo=UTC)

    def price(status: str) -> list[Condition]:
        reason = "NoPriceForModel" if status == "True" else "PricesKnown"
        return [Condition(type="PriceUnknown", status=ConditionStatus(status), reason=reason,
                          message=f"{reason}: router", last_transition_time=at)]  # fmt: skip

    events.pool_prices(pool, None, price("True"))  # a new pool, or one the operator first sees
    events.pool_prices(pool, price("True"), price("True"))  # a restarted operator
    events.pool_prices(pool, price("True"), price("False"))
    events.pool_prices(pool, None, price("False"))
    await events.recorder.write_due()
    (unknown,) = sink.by_reason("PriceUnknown")
    assert unknown["type"] == "Warning" and unknown["note"] == "NoPriceForModel: router"
    assert [e["type"] for e in sink.by_reason("PricesKnown")] == ["Normal"]


async def test_suspending_and_resuming_an_agent_are_events_and_a_repeat_is_not():
    sink = MemoryEventSink()
    events = OperatorEvents(EventRecorder(sink, controller="c", instance="i"))
    agent = AgentObject.from_body({"metadata": {"name": "a", "namespace": "ns", "uid": "u"}})
    events.agent_phase(agent, Phase.RUNNING, Phase.SUSPENDED)
    events.agent_phase(agent, Phase.SUSPENDED, Phase.SUSPENDED)
    events.agent_phase(agent, Phase.SUSPENDED, Phase.PENDING)
    await events.recorder.write_due()
    assert sorted(e["reason"] for e in sink.events.values()) == ["Resumed", "Suspended"]


def test_the_operator_exports_each_agents_phase_and_last_checkpoint_and_forgets_deleted_ones():
    from prometheus_client import CollectorRegistry, generate_latest

    from llmagents.operator.metrics import AgentGauges

    registry = CollectorRegistry()
    gauges = AgentGauges(registry)
    stamp = datetime(2030, 1, 1, tzinfo=UTC)
    gauges.observe("ns", "a", Phase.PENDING, None)
    gauges.observe("ns", "a", Phase.RUNNING, stamp)
    gauges.observe("ns", "b", Phase.SUSPENDED, None)
    text = generate_latest(registry).decode()
    assert 'llmagents_agent_phase{agent="a",namespace="ns",phase="Running"} 1.0' in text
    assert 'phase="Pending"' not in text  # a left phase is gone, not 0
    assert (
        registry.get_sample_value(
            "llmagents_agent_last_checkpoint_timestamp_seconds", {"agent": "a", "namespace": "ns"}
        )
        == stamp.timestamp()
    )
    gauges.forget("ns", "a")
    text = generate_latest(registry).decode()
    assert 'agent="a"' not in text and 'agent="b"' in text
