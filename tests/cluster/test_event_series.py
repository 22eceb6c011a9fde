"""Event series on a real API server: what events.k8s.io/v1 accepts when a series grows, and a
restarted writer that continues its series instead of starting a second Event (one list and
one patch), as ``kubectl describe`` then shows it; through the runner's client and
through the operator's."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from test_operator import OperatorProcess
from test_runner_e2e import (  # noqa: F401 (fixtures; crds is autouse)
    Fakes,
    apply_agent,
    checkpoint,
    crds,
    fakes,
    operator,
    runner_status,
    setup,
    status,
)

from llmagents.events import EventRecorder, EventSink, EventType, Regarding
from llmagents.kube import KubeClient
from llmagents.operator.cluster_api import ApiEventSink, ClusterApi
from llmagents.runner.events import CONTROLLER, KubeEventSink
from tooling.cluster import Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

pytestmark = pytest.mark.cluster


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


@pytest.mark.slow
def test_a_runner_killed_mid_run_continues_its_fallback_event_after_the_restart(
    kubectl: Kubectl,
    namespace: str,
    operator: OperatorProcess,  # noqa: F811
    process_kubelet: ProcessKubelet,
    fakes: Fakes,  # noqa: F811
) -> None:
    fakes.primary.update_faults(outage=True)
    fakes.fallback.update_faults(latency="300")
    setup(kubectl, fakes)
    apply_agent(kubectl, "worker", tasks=12)

    def fell_back() -> list[dict[str, Any]]:
        items = kubectl.json("get", "events.events.k8s.io")["items"]
        return [e for e in items if e["reason"] == "FellBack"]

    eventually(lambda: len((checkpoint(kubectl, "worker") or {}).get("completed", [])) >= 3
               and fell_back(), timeout=120, what="three tasks done, the FellBack Event written")  # fmt: skip
    victim = runner_status(process_kubelet, namespace)
    assert victim is not None and victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)  # no flush: what it counted since is lost
    eventually(lambda: status(kubectl, "worker").get("phase") == "Completed", timeout=180,
               what="all tasks done after the restart")  # fmt: skip
    assert victim.restart_count >= 1
    # The restarted runner found its Event and went on counting in it: still one Event for
    # the pair, with the count of the calls it fell back on after the restart added.
    eventually(lambda: [e for e in fell_back() if (e.get("series") or {}).get("count")],
               timeout=60, what="the FellBack series patched")  # fmt: skip
    (event,) = fell_back()  # not a second Event beside the first runner's
    assert "fell back from primary to fallback" in event["note"]
    assert event["series"]["count"] >= 12 - 3 - 1
