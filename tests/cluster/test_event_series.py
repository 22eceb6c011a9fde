"""Event series on a real API server: what events.k8s.io/v1 accepts when a series grows, and a
restarted writer that continues its series instead of starting a second Event (one list and
one patch), as ``kubectl describe`` then shows it; through the runner's client and
through the operator's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llmagents.events import EventRecorder, EventSink, EventType, Regarding
from llmagents.kube import KubeClient
from llmagents.operator.cluster_api import ApiEventSink, ClusterApi
from llmagents.runner.events import CONTROLLER, KubeEventSink
from tooling.cluster import ClusterInfo, Kubectl

pytestmark = pytest.mark.cluster


@pytest.fixture
async def kube(cluster: ClusterInfo) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_environment(kubeconfig=str(cluster.kubeconfig))
    yield client
    await client.aclose()


class Counting:
    """The runner's or the operator's sink, counting the requests it sends."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.calls: list[str] = []

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        self.calls.append("create")
        await self.sink.create(namespace, body)

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append("patch")
        await self.sink.patch(namespace, name, patch)

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self.calls.append("list")
        return await self.sink.list_events(namespace, field_selector)


SINKS: dict[str, Callable[[KubeClient], EventSink]] = {
    "runner": KubeEventSink,
    "operator": lambda kube: ApiEventSink(ClusterApi(kube)),
}


def recorder(sink: Counting, instance: str) -> EventRecorder:
    # Series patched as soon as counted, so that the test need not wait a minute.
    return EventRecorder(sink, controller=CONTROLLER, instance=instance, series_interval=0.0)


@pytest.mark.parametrize("writer", sorted(SINKS))
async def test_a_restarted_writer_continues_its_event_series_on_the_api_server(
    kube: KubeClient, kubectl: Kubectl, namespace: str, writer: str
) -> None:
    kubectl("create", "configmap", "agent-a")
    uid = kubectl("get", "configmap", "agent-a", "-o", "jsonpath={.metadata.uid}").stdout
    regarding = Regarding("v1", "ConfigMap", namespace, "agent-a", uid)
    first = Counting(SINKS[writer](kube))
    events = recorder(first, "runner-pod-1")
    for i in range(3):
        events.record(regarding, reason="FellBack", key="a>b",
                      note=f"fell back from a to b (timeout: attempt {i})")  # fmt: skip
    events.record(regarding, reason="CircuitOpened", note="provider a: circuit open",
                  type=EventType.WARNING, key="a")  # fmt: skip
    await events.write_due()
    # Two more, each with another note: the series grows, the written note stays (the API
    # server refuses a patch that changes anything but the series).
    for i in range(3, 5):
        events.record(regarding, reason="FellBack", key="a>b",
                      note=f"fell back from a to b (timeout: attempt {i})")  # fmt: skip
    await events.write_due()
    assert first.calls == ["list", "create", "create", "patch"] and events.dropped == 0

    # The writer restarts: a new process, another pod name, nothing in memory.
    second = Counting(SINKS[writer](kube))
    restarted = recorder(second, "runner-pod-2")
    restarted.record(regarding, reason="FellBack", key="a>b", note="fell back from a to b")
    restarted.record(regarding, reason="FellBack", key="b>c", note="fell back from b to c")
    await restarted.write_due()
    assert second.calls == ["list", "patch", "create"] and restarted.dropped == 0

    listed = await kube.request("GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
    by_note = {e["note"]: e for e in listed["items"]}
    assert len(listed["items"]) == 3
    ab = by_note["fell back from a to b (timeout: attempt 2)"]  # as written first
    assert ab["series"]["count"] == 6 and ab["reportingInstance"] == "runner-pod-1"
    described = kubectl("describe", "configmap", "agent-a").stdout
    print(described)
    assert "(x6 over" in described and "fell back from b to c" in described
