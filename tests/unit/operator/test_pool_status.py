"""ProviderPool status folded from the agents' reports."""

from __future__ import annotations

from datetime import UTC, datetime

from operator_samples import pool_body

from llmagents.api.status import ProviderStatus
from llmagents.operator.objects import PoolObject
from llmagents.operator.pool_status import pool_status

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _report(*entries: dict) -> list[ProviderStatus]:
    return [ProviderStatus.model_validate(e) for e in entries]


def _fold(reports):
    pool = PoolObject.from_body(pool_body())
    return pool_status(
        pool.spec, None, generation=3, agents=len(reports), reports=reports, previous=None, now=NOW
    )


def test_pool_counts_agents_breakers_and_health_per_provider():
    status = _fold(
        [
            _report(
                {"name": "claude", "healthy": False, "breakerState": "open", "successRate": 0.2},
                {"name": "router", "healthy": True, "latencyP95Ms": 300.0, "successRate": 1.0},
            ),
            _report(
                {"name": "claude", "healthy": True, "successRate": 0.8,
                 "lastSuccess": "2030-01-01T00:00:00Z"},
                {"name": "router", "healthy": True, "latencyP95Ms": 900.0},
            ),
            None,  # an agent that has not reported yet
        ]
    )  # fmt: skip
    by_name = {p.name: p for p in status.providers}
    claude, router, local = by_name["claude"], by_name["router"], by_name["local"]
    assert (claude.agents, claude.agents_healthy, claude.open_breakers) == (2, 1, 1)
    assert claude.healthy is False  # half is not most
    assert claude.success_rate == 0.5
    assert claude.last_seen == NOW
    assert router.healthy is True and router.latency_p95_ms == 900.0
    assert local.agents == 0 and local.healthy is False
    assert (status.healthy, status.open_breakers, status.provider_count) == ("1/3", 1, 3)
    assert status.agents == 3 and status.observed_generation == 3
    conditions = {c.type: (c.status.value, c.reason) for c in status.conditions}
    assert conditions["ProvidersHealthy"] == ("False", "ProvidersUnhealthy")


def test_a_pool_no_agent_reports_on_has_unknown_health():
    status = _fold([])
    conditions = {c.type: (c.status.value, c.reason) for c in status.conditions}
    assert conditions == {
        "Ready": ("True", "Accepted"),
        "ProvidersHealthy": ("Unknown", "NoReports"),
    }
    assert status.healthy == "0/3"


def test_an_invalid_pool_says_so():
    status = pool_status(
        None, "providers: bad", generation=1, agents=0, reports=[], previous=None, now=NOW
    )
    assert status.conditions[0].reason == "InvalidSpec"
    assert status.providers is None


def test_the_pool_says_how_many_agents_see_a_provider_open_since_when_and_its_cost():
    status = _fold(
        [
            _report({"name": "claude", "healthy": False, "breakerState": "open",
                     "openSince": "2029-12-31T23:50:00Z", "costUSD": 0.25}),
            _report({"name": "claude", "healthy": False, "breakerState": "open",
                     "openSince": "2029-12-31T23:40:00Z", "costUSD": 0.5}),
            # Half-open is not open: its opening does not count, its spend does.
            _report({"name": "claude", "healthy": False, "breakerState": "half-open",
                     "openSince": "2029-12-31T23:00:00Z", "costUSD": 0.25}),
            _report({"name": "router", "healthy": True, "costUSD": 0.0}),
        ]
    )  # fmt: skip
    by_name = {p.name: p for p in status.providers}
    claude, router = by_name["claude"], by_name["router"]
    assert (claude.open_breakers, claude.agents) == (2, 3)
    assert claude.open_since == datetime(2029, 12, 31, 23, 40, tzinfo=UTC)
    assert claude.cost_usd == 1.0
    assert router.open_since is None and router.cost_usd == 0.0
    wire = status.to_wire()["providers"][0]
    assert wire["openSince"] == "2029-12-31T23:40:00Z" and wire["costUSD"] == 1.0
