"""Leader election on a real API server: one leader at a time, a fast handover on release, and
a leader that stops leading in time when the API server stalls (accepts and never answers)."""

from __future__ import annotations

import asyncio

import pytest

from llmagents.kube import KubeClient
from llmagents.operator.leader import LeadershipLost, LeaseElector
from tooling.cluster import ClusterInfo

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("control-plane-outages")]


def elector(kube: KubeClient, namespace: str, identity: str) -> LeaseElector:
    return LeaseElector(
        kube, namespace=namespace, name="llmagents-operator", identity=identity,
        lease_seconds=6, renew_seconds=1.0, retry_seconds=0.5, renew_deadline=4.0,
        request_timeout=1.5,
    )  # fmt: skip


async def test_one_candidate_leads_and_a_release_hands_over_at_once(
    kube: KubeClient, namespace: str
) -> None:
    first, second = elector(kube, namespace, "first"), elector(kube, namespace, "second")
    await first.acquire()
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(2.0)  # two renewal periods: the second must still be waiting
    assert not waiting.done() and first.leading
    keeping = asyncio.create_task(first.keep())
    await first.release()
    keeping.cancel()
    async with asyncio.timeout(5):  # far less than the 6 s Lease: the release handed over
        await waiting
    assert second.leading
    await second.release()


async def test_a_leader_stops_leading_within_its_deadline_when_the_api_server_stalls(
    kube: KubeClient, namespace: str, cluster: ClusterInfo
) -> None:
    control_plane = cluster.local
    if control_plane is None:
        pytest.skip("the API server of an external cluster is not ours to stall")
    leader = elector(kube, namespace, "leader")
    await leader.acquire()
    keeping = asyncio.create_task(leader.keep())
    await asyncio.sleep(1.5)  # at least one renewal went through
    loop = asyncio.get_running_loop()
    control_plane.pause_component("kube-apiserver")
    stalled_at = loop.time()
    try:
        with pytest.raises(LeadershipLost):
            async with asyncio.timeout(10):
                await keeping
        lost_after = loop.time() - stalled_at
    finally:
        control_plane.resume_component("kube-apiserver")
    assert not leader.leading
    # The last renewal was at most 1 s before the stall; the deadline is 4 s after it, and
    # the Lease (6 s) outlives it: no standby can have taken over while this one still led.
    assert lost_after <= 4.5
