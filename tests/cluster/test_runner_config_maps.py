"""The runner's checkpoint and results ConfigMaps on a real API server.

The runner creates them itself, owned by its LLMAgent: on its first read, on the first result
for a shard, and again when one is deleted under it; deleting the agent removes them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from polling import eventually
from test_crds import install_crds

from llmagents.api.runner_config import AgentIdentity, results_config_map_names
from llmagents.runner.checkpoint import Checkpoint
from llmagents.runner.checkpointer import Checkpointer
from llmagents.runner.configmap_store import ConfigMapCheckpointStore
from llmagents.kube import KubeClient
from llmagents.runner.results import ConfigMapResultStore, TaskResult
from llmagents.testing.cluster import ClusterInfo, Kubectl

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


@pytest.fixture
def owner(kubectl: Kubectl, namespace: str) -> AgentIdentity:
    """An LLMAgent to own the ConfigMaps (no operator runs: only its uid matters here)."""
    kubectl.apply(json.dumps({
        "apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
        "metadata": {"name": "keeper", "namespace": namespace},
        "spec": {"poolRef": {"name": "pool"}, "work": {"tasks": [{"name": "t", "prompt": "p"}]}},
    }))  # fmt: skip
    uid = kubectl.json("get", "llmagent", "keeper")["metadata"]["uid"]
    return AgentIdentity(name="keeper", namespace=namespace, uid=uid)


@pytest.fixture
async def kube(cluster: ClusterInfo) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_environment(kubeconfig=str(cluster.kubeconfig))
    yield client
    await client.aclose()


def config_map(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    result = kubectl("get", "configmap", name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def state(completed: list[str]) -> Any:
    def build(epoch: int, sequence: int, with_custom: bool) -> Checkpoint:
        now = datetime.now(UTC)
        return Checkpoint(agent_uid="uid", epoch=epoch, sequence=sequence, written_at=now,
                          started_at=now, engine={}, total_tasks=5, completed=list(completed))  # fmt: skip

    return build


async def test_the_checkpoint_config_map_is_created_owned_and_recreated_after_deletion(
    kube: KubeClient, kubectl: Kubectl, owner: AgentIdentity
) -> None:
    store = ConfigMapCheckpointStore(kube, owner=owner, name="keeper-checkpoint")
    completed = ["a"]
    checkpointer = Checkpointer(store, state(completed), interval=60, min_spacing=0)
    assert await checkpointer.claim(lambda restored: None) is None  # nothing stored yet
    made = config_map(kubectl, "keeper-checkpoint")
    assert made is not None
    assert made["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert made["metadata"]["labels"]["llmagents.dev/agent"] == "keeper"

    writer = asyncio.create_task(checkpointer.run())
    try:
        kubectl("delete", "configmap", "keeper-checkpoint")
        completed.append("b")
        # The save finds the ConfigMap gone, creates it, reads it (epoch 0: not fenced) and
        # writes into it, all in one attempt.
        assert await checkpointer.save(10)
        assert checkpointer.fenced is None
    finally:
        checkpointer.close()
        await writer
    stored = await store.read()
    assert stored.checkpoint is not None and stored.checkpoint.completed == ["a", "b"]


async def test_results_shards_are_created_as_they_fill_and_go_with_the_agent(
    kube: KubeClient, kubectl: Kubectl, owner: AgentIdentity
) -> None:
    names = results_config_map_names("keeper")
    results = ConfigMapResultStore(kube, owner=owner, names=names)
    results.add(TaskResult(task="t1", ok=True, ended_at=datetime.now(UTC), text="hello"))
    assert await results.flush()
    first = config_map(kubectl, names[0])
    assert first is not None and json.loads(first["data"]["t1"])["text"] == "hello"
    assert [config_map(kubectl, n) for n in names[1:]] == [None] * (len(names) - 1)

    kubectl("delete", "configmap", names[0])
    results.add(TaskResult(task="t2", ok=False, ended_at=datetime.now(UTC), error="boom"))
    assert not await results.flush()  # the shard vanished: kept pending, created again
    assert await results.flush()
    assert json.loads(config_map(kubectl, names[0])["data"]["t2"])["error"] == "boom"

    kubectl("delete", "llmagent", "keeper")
    eventually(lambda: config_map(kubectl, names[0]) is None, what="garbage collection")


async def test_a_result_that_finds_every_shard_full_is_listed_not_stored(
    kube: KubeClient, kubectl: Kubectl, owner: AgentIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmagents.runner.results.SHARD_LIMIT", 600)
    names = results_config_map_names("keeper")[:1]
    results = ConfigMapResultStore(kube, owner=owner, names=names)
    for n in range(4):  # about 250 bytes each: two fit
        results.add(TaskResult(task=f"t{n}", ok=True, ended_at=datetime.now(UTC), text="x" * 80))
    assert await results.flush()  # nothing pending: what did not fit was let go
    stored = config_map(kubectl, names[0])
    assert stored is not None and sorted(stored["data"]) == ["t0", "t1"]
    assert results.not_stored == ["t2", "t3"]
