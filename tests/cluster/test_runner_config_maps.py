"""The runner's checkpoint and results ConfigMaps on a real API server.

The runner creates them itself, owned by its LLMAgent: on its first read, on the first result
for a shard, and again when one is deleted under it; deleting the agent removes them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from test_crds import install_crds

from llmagents.api.runner_config import AgentIdentity, results_config_map_names
from llmagents.kube import KubeClient
from llmagents.runner.checkpoint import Checkpoint
from llmagents.runner.checkpoint_writer import Checkpointer
from llmagents.runner.configmap_store import ConfigMapCheckpointStore
from llmagents.runner.results import ConfigMapResultStore, TaskResult
from tooling.cluster import ClusterInfo, Kubectl
from tooling.polling import eventually

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
    assert await results.flush()  # the shard vanished: created again and written at once
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


async def test_a_stale_runner_beside_its_replacement_has_its_checkpoint_and_results_refused(
    kube: KubeClient, kubectl: Kubectl, owner: AgentIdentity
) -> None:
    names = results_config_map_names("keeper")
    old_done: list[str] = []
    old_store = ConfigMapCheckpointStore(kube, owner=owner, name="keeper-checkpoint")
    old = Checkpointer(old_store, state(old_done), interval=60, min_spacing=0)
    await old.claim(lambda restored: None)
    old_results = ConfigMapResultStore(kube, owner=owner, names=names)
    await old_results.claim(old.epoch)
    old_writer = asyncio.create_task(old.run())
    old_done.append("t1")
    assert await old.save(10)
    old_results.add(TaskResult(task="t1", ok=True, ended_at=datetime.now(UTC), text="first"))
    assert await old_results.flush()

    # The replacement starts while the old pod still runs (a partition, a slow shutdown).
    new_done: list[str] = []
    new_store = ConfigMapCheckpointStore(kube, owner=owner, name="keeper-checkpoint")
    new = Checkpointer(new_store, state(new_done), interval=60, min_spacing=0)
    restored = await new.claim(lambda checkpoint: new_done.extend(checkpoint.completed))
    assert restored is not None and new_done == ["t1"] and new.epoch == old.epoch + 1
    new_results = ConfigMapResultStore(kube, owner=owner, names=names)
    await new_results.claim(new.epoch)

    # The old runner ends another task: its checkpoint write names a resourceVersion the
    # API server no longer has (409), and the re-read shows the newer epoch: fenced.
    old_done.append("t2")
    assert not await old.save(10)
    assert old.fenced is not None and (old.fenced.ours, old.fenced.theirs) == (1, 2)
    await old_writer
    # Its result write is refused the same way: the shard was claimed by epoch 2.
    old_results.add(TaskResult(task="t2", ok=True, ended_at=datetime.now(UTC), text="stale"))
    assert not await old_results.flush()
    assert old_results.fenced == new.epoch
    shard = config_map(kubectl, names[0])
    assert shard is not None and sorted(shard["data"]) == ["t1"]
    assert shard["metadata"]["annotations"]["llmagents.dev/results-epoch"] == str(new.epoch)
    stored = await new_store.read()
    assert stored.epoch == new.epoch and stored.checkpoint is not None
    assert stored.checkpoint.completed == ["t1"]

    # The replacement writes on.
    new_done.append("t2")
    new_writer = asyncio.create_task(new.run())
    try:
        assert await new.save(10)
        new_results.add(TaskResult(task="t2", ok=True, ended_at=datetime.now(UTC), text="new"))
        assert await new_results.flush()
    finally:
        new.close()
        await new_writer
    shard = config_map(kubectl, names[0])
    assert shard is not None and json.loads(shard["data"]["t2"])["text"] == "new"
    assert (await new_store.read()).checkpoint.completed == ["t1", "t2"]


async def test_a_result_written_again_after_a_restart_stays_one_row_in_its_shard(
    kube: KubeClient, kubectl: Kubectl, owner: AgentIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llmagents.runner.results.SHARD_LIMIT", 600)
    names = results_config_map_names("keeper")[:2]
    first = ConfigMapResultStore(kube, owner=owner, names=names)
    await first.claim(1)
    for n in range(2):  # about 250 bytes each: the first shard holds two
        first.add(TaskResult(task=f"t{n}", ok=True, ended_at=datetime.now(UTC), text="x" * 80))
    assert await first.flush()
    # A restarted runner writes t0 again (it cannot know whether the write landed) and t2.
    second = ConfigMapResultStore(kube, owner=owner, names=names)
    await second.claim(2)
    second.add(TaskResult(task="t0", ok=True, ended_at=datetime.now(UTC), text="x" * 80))
    second.add(TaskResult(task="t2", ok=True, ended_at=datetime.now(UTC), text="x" * 80))
    assert await second.flush()
    shards = [sorted((config_map(kubectl, n) or {}).get("data") or {}) for n in names]
    assert shards == [["t0", "t1"], ["t2"]]
