"""The leader's renewals against a Lease store whose answers come late, as an API server
starved of CPU answers (``make e2e`` on a loaded machine restarted the operator that way);
the real API server, stalled, is tests/cluster/test_leader.py's."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import pytest

from llmagents.kube import KubeClient, KubeConflict, KubeNotFound, KubeUnavailable
from llmagents.operator.leader import LeadershipLost, LeaseElector

PATH = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/llmagents-operator"


class SlowLeases:
    """``KubeClient.request`` over one Lease: resourceVersions, 409 for a write naming an old
    one, and every answer ``latency`` seconds late; a request whose timeout is shorter fails
    when it runs out, as the client's does."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.calls: list[str] = []

    async def request(
        self, method: str, path: str, *, body: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        self.calls.append(method)
        if timeout is not None and timeout < self.latency:
            await asyncio.sleep(timeout)
            raise KubeUnavailable(f"{method} {path}: TimeoutError")
        await asyncio.sleep(self.latency)
        if method == "GET":
            if self.lease is None:
                raise KubeNotFound(f"GET {path}: 404")
            return copy.deepcopy(self.lease)
        if method == "POST" and self.lease is None:
            return self.store(body)
        if method == "PUT" and self.lease is not None:
            if body["metadata"].get("resourceVersion") == self.lease["metadata"]["resourceVersion"]:
                return self.store(body)
        raise KubeConflict(f"{method} {path}: 409")

    def store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"]["holderIdentity"]


def _elector(leases: SlowLeases) -> LeaseElector:
    # The chart's geometry (30 s Lease, renewals every 10 s, 20 s deadline, 5 s requests
    # for candidates), scaled down tenfold.
    return LeaseElector(
        cast(KubeClient, leases), namespace="ops", name="llmagents-operator", identity="me",
        lease_seconds=3, renew_seconds=1.0, retry_seconds=0.2, renew_deadline=2.0,
        request_timeout=0.5,
    )  # fmt: skip


async def _keep_for(elector: LeaseElector, seconds: float) -> None:
    """Run ``keep`` for ``seconds``; LeadershipLost propagates."""
    keeping = asyncio.create_task(elector.keep())
    done, _ = await asyncio.wait({keeping}, timeout=seconds)
    if done:
        await keeping
    keeping.cancel()


async def test_a_leader_keeps_its_lease_while_every_answer_is_later_than_the_request_timeout():
    leases = SlowLeases()
    elector = _elector(leases)
    await elector.acquire()
    leases.latency, leases.calls = 0.7, []  # each answer after more than the 0.5 s timeout
    await _keep_for(elector, 4.5)
    assert elector.leading and leases.holder() == "me"
    # One request a renewal (the Lease as the last write returned it): no read before it.
    assert leases.calls and set(leases.calls) == {"PUT"}, leases.calls
    assert len(leases.calls) >= 3, leases.calls


async def test_a_renewal_reads_the_lease_first_when_it_was_written_since():
    leases = SlowLeases()
    elector = _elector(leases)
    await elector.acquire()
    assert leases.lease is not None
    leases.store({**leases.lease, "metadata": {**leases.lease["metadata"], "labels": {"x": "1"}}})
    leases.calls = []
    await _keep_for(elector, 1.5)
    assert leases.calls[:3] == ["PUT", "GET", "PUT"], leases.calls  # 409, read, renewed
    assert elector.leading and leases.holder() == "me"
    assert leases.lease["metadata"]["labels"] == {"x": "1"}  # what the other write left


async def test_a_leader_whose_renewals_never_answer_stops_within_its_deadline():
    leases = SlowLeases()
    elector = _elector(leases)
    await elector.acquire()
    loop = asyncio.get_running_loop()
    acquired = loop.time()  # the last write that landed
    leases.latency = 60.0
    with pytest.raises(LeadershipLost):
        await _keep_for(elector, 10.0)
    # Stopped within the deadline of the last renewal's send, well before the Lease (3 s)
    # could pass to a standby.
    assert loop.time() - acquired <= 2.0 + 0.3
    assert not elector.leading
