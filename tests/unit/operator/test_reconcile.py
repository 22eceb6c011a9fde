"""The reconciler against an in-memory object store: what it writes, and when it keeps quiet.

The store plays both the API server (``Api``: apply, label-selected lists, Secret keys) and
kopf's indexes (``Views``) reading the same objects, as the watch would deliver them. The
real API server's behaviour is covered by tests/cluster; here the subject is which writes
happen.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from operator_samples import NAMESPACE, agent_body, pool_body

from llmagents.api.status import OPERATOR_FIELD_MANAGER, RUNNER_FIELD_MANAGER
from llmagents.operator.children import CHILD_KINDS, is_subset
from llmagents.operator.cluster_api import secret_key_problems
from llmagents.operator.ownership import applied_conditions
from llmagents.operator.reconcile import Reconciler
from llmagents.operator.settings import OperatorSettings
from tooling.polling import eventually_async as _eventually

NOW = datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
AGENT = (NAMESPACE, "writer")
POOL = (NAMESPACE, "pool")


class Store:
    """Objects by (kind, namespace, name), written by apply, read as the indexes would."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        # Secret name -> its key names, or its keys and values
        self.secrets: dict[str, set[str] | dict[str, str]] = {
            "llm-keys": {"anthropic", "openrouter"}
        }
        self.writes: list[tuple[str, str, str | None]] = []
        self.lists: list[str] = []
        self.secret_reads = 0
        self.fail_next = 0
        self.delays: dict[str, float] = {}  # kind -> seconds each apply of it takes

    def put(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.objects[(body["kind"], meta["namespace"], meta["name"])] = copy.deepcopy(body)

    async def apply(self, manifest: dict[str, Any], *, subresource: str | None = None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("API server unavailable")
        await asyncio.sleep(self.delays.get(manifest["kind"], 0))
        meta = manifest["metadata"]
        key = (manifest["kind"], meta["namespace"], meta["name"])
        if manifest["kind"] == "RoleBinding":
            # The API server reads the bound Role to check that the binder holds its rights.
            role = manifest["roleRef"]["name"]
            if ("Role", meta["namespace"], role) not in self.objects:
                raise LookupError(f"roles {role!r} not found")
        self.writes.append((manifest["kind"], meta["name"], subresource))
        if subresource == "status":
            self.apply_status(key, manifest["status"], OPERATOR_FIELD_MANAGER)
        else:
            self.objects[key] = copy.deepcopy(manifest)

    def apply_status(self, key: tuple[str, str, str], status: dict, manager: str) -> None:
        """Server-side apply of ``status`` by ``manager``, conditions merged by type as the
        API server merges them: the manager's own earlier conditions it leaves out go,
        others' stay, and managedFields record who holds which."""
        body = self.objects[key]
        status = copy.deepcopy(status)
        wanted = status.pop("conditions", [])
        live = body.setdefault("status", {})
        live.update(status)
        managed = body["metadata"].setdefault("managedFields", [])
        dropped = (applied_conditions(managed, manager) or set()) - {c["type"] for c in wanted}
        merged = {c["type"]: c for c in live.get("conditions", []) if c["type"] not in dropped}
        merged.update((c["type"], c) for c in wanted)
        live["conditions"] = list(merged.values())
        managed[:] = [m for m in managed if m["manager"] != manager]
        items = {f'k:{{"type":"{c["type"]}"}}': {".": {}} for c in wanted}
        managed.append({"manager": manager, "operation": "Apply", "subresource": "status",
                        "fieldsV1": {"f:status": {"f:conditions": items}}})  # fmt: skip

    async def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None,
        labels: str,
        metadata_only: bool = False,
    ):
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("API server unavailable")
        self.lists.append(kind)
        selector = dict(term.split("=") for term in labels.split(","))
        # Like the API server's, the items carry no kind and apiVersion.
        fields = ("metadata",) if metadata_only else None
        yield [
            {f: copy.deepcopy(v) for f, v in body.items()
             if f not in ("kind", "apiVersion") and (fields is None or f in fields)}
            for (k, ns, _), body in self.objects.items()
            if k == kind
            and namespace in (None, ns)
            and selector.items() <= (body["metadata"].get("labels") or {}).items()
        ]  # fmt: skip

    async def secret_keys(self, namespace: str, name: str) -> dict[str, str | None] | None:
        self.secret_reads += 1
        await asyncio.sleep(0)
        held = self.secrets.get(name)
        if isinstance(held, dict):  # values given: judged as the real API client judges them
            data = {k: base64.b64encode(v.encode()).decode() for k, v in held.items()}
            return secret_key_problems({"data": data})
        return None if held is None else {key: None for key in held}

    # Views
    def agent(self, key):
        return self.objects.get(("LLMAgent", *key))

    def pool(self, key):
        return self.objects.get(("ProviderPool", *key))

    def agents_of_pool(self, key):
        return sorted(
            (k[1], k[2])
            for k, body in self.objects.items()
            if k[0] == "LLMAgent" and k[1] == key[0] and body["spec"]["poolRef"]["name"] == key[1]
        )

    def children(self) -> dict[tuple[str, str], dict]:
        return {
            (k[0], k[2]): v
            for k, v in self.objects.items()
            if k[0] not in ("LLMAgent", "ProviderPool")
        }


@pytest.fixture
def store() -> Store:
    s = Store()
    s.put(pool_body())
    s.put(agent_body())
    return s


def _reconciler(store: Store, resync_seconds: float = 0.0) -> Reconciler:
    return Reconciler(
        store, store, OperatorSettings(), clock=lambda: NOW, resync_seconds=resync_seconds
    )


async def test_first_reconcile_creates_every_child_and_sets_status(store):
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    assert len(store.children()) == 6
    status = store.agent(AGENT)["status"]
    assert status["phase"] == "Pending"
    assert status["observedGeneration"] == 1
    assert status["strategy"] == "priority"
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "RunnerStarting"
    await reconciler.close()


async def test_a_role_binding_waits_for_its_role_and_the_deployment_comes_last(store):
    store.delays = {"Role": 0.02, "ServiceAccount": 0.01, "ConfigMap": 0.01}
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    kinds = [kind for kind, _, subresource in store.writes if subresource is None]
    assert kinds.index("Role") < kinds.index("RoleBinding") < kinds.index("Deployment")
    assert kinds[-1] == "Deployment" and len(kinds) == 6
    await reconciler.close()


async def test_a_converged_agent_costs_no_write_even_after_a_restart(store):
    first = _reconciler(store)
    await first.reconcile_agent(AGENT)
    writes = len(store.writes)
    await first.reconcile_agent(AGENT)
    restarted = _reconciler(store)
    await restarted.reconcile_agent(AGENT)
    assert len(store.writes) == writes
    await first.close()
    await restarted.close()


async def test_a_restarted_operator_leaves_the_runner_s_own_conditions_alone(store):
    first = _reconciler(store)
    await first.reconcile_agent(AGENT)
    own = {"type": "CheckpointTooLarge", "status": "True", "reason": "CheckpointTooLarge",
           "message": "custom state too large", "lastTransitionTime": "2030-01-01T00:05:00Z"}  # fmt: skip
    report = {"providers": [{"name": n, "healthy": True} for n in ("claude", "router", "local")],
              "conditions": [own]}  # fmt: skip
    store.apply_status(("LLMAgent", *AGENT), report, RUNNER_FIELD_MANAGER)
    await first.reconcile_agent(AGENT)
    await first.fold_pool(POOL)
    assert store.agent(AGENT)["status"]["phase"] == "Running"
    writes = len(store.writes)
    await first.close()

    restarted = _reconciler(store)
    await restarted.reconcile_agent(AGENT)
    await restarted.fold_pool(POOL)
    assert store.writes[writes:] == []
    assert own in store.agent(AGENT)["status"]["conditions"]
    await restarted.close()


def put_agents(store, count: int) -> list[tuple[str, str]]:
    """``count`` agents like AGENT, named a0, a1, ...; their keys."""
    for i in range(count):
        body = agent_body()
        body["metadata"].update(name=f"a{i}", uid=f"uid-{i}")
        store.put(body)
    return [(NAMESPACE, f"a{i}") for i in range(count)]


async def test_children_are_listed_once_per_kind_however_many_agents_reconcile(store):
    keys = put_agents(store, 5)
    reconciler = _reconciler(store)
    await asyncio.gather(*map(reconciler.reconcile_agent, keys))
    await reconciler.reconcile_agent(AGENT)
    assert sorted(store.lists) == sorted(CHILD_KINDS)
    await reconciler.close()


async def test_a_resync_recreates_deleted_children_and_repairs_edited_ones(store):
    reconciler = _reconciler(store, resync_seconds=0.05)
    await reconciler.reconcile_agent(AGENT)
    config = store.objects.pop(("ConfigMap", NAMESPACE, "writer-config"))
    role = store.objects[("Role", NAMESPACE, "writer-runner")]
    granted = copy.deepcopy(role["rules"])
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    await _eventually(
        lambda: (
            ("ConfigMap", "writer-config") in store.children()
            and store.children()[("Role", "writer-runner")]["rules"] == granted
        )
    )
    assert store.children()[("ConfigMap", "writer-config")]["data"] == config["data"]
    await reconciler.close()


async def test_a_resync_of_untouched_children_writes_nothing(store):
    reconciler = _reconciler(store, resync_seconds=0.02)
    await reconciler.reconcile_agent(AGENT)
    writes = len(store.writes)
    await _eventually(lambda: len(store.lists) >= 2 * len(CHILD_KINDS))
    assert len(store.writes) == writes
    await reconciler.close()


async def test_operator_status_writes_carry_only_operator_fields(store):
    body = store.agent(AGENT)
    body["status"] = {
        "currentProvider": "claude",
        "providers": [{"name": "claude", "healthy": True}],
    }
    reconciler = _reconciler(store)
    sent: list[dict] = []
    original = store.apply

    async def spy(manifest, *, subresource=None):
        if subresource == "status":
            sent.append(manifest["status"])
        await original(manifest, subresource=subresource)

    store.apply = spy  # type: ignore[method-assign]
    await reconciler.reconcile_agent(AGENT)
    assert sent and set(sent[0]) == {"phase", "conditions", "observedGeneration", "strategy"}
    assert store.agent(AGENT)["status"]["currentProvider"] == "claude"
    assert store.agent(AGENT)["status"]["phase"] == "Running"
    await reconciler.close()


async def test_a_missing_pool_builds_nothing_until_the_pool_appears(store):
    pool = store.objects.pop(("ProviderPool", *POOL))
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    assert store.children() == {}
    ready = {c["type"]: c for c in store.agent(AGENT)["status"]["conditions"]}["PoolResolved"]
    assert (ready["status"], ready["reason"]) == ("False", "PoolNotFound")
    store.put(pool)
    reconciler.pool_changed(POOL, generation=1)
    await _eventually(lambda: len(store.children()) == 6)
    await reconciler.close()


@pytest.mark.parametrize(
    "retry", [{"initialDelay": "99999999999h"}, {"multiplier": "lots"}]
)  # the first passed the CRD's schema and raised OverflowError from the models
async def test_a_pool_that_fails_to_parse_gets_a_condition_and_its_agents_say_why(store, retry):
    body = pool_body(generation=2)
    body["spec"]["retry"] = retry
    store.put(body)
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    resolved = {c["type"]: c for c in store.agent(AGENT)["status"]["conditions"]}["PoolResolved"]
    assert (resolved["status"], resolved["reason"]) == ("False", "PoolInvalid")
    assert "retry" in resolved["message"]
    assert store.children() == {}
    await reconciler.fold_pool(POOL)
    ready = {c["type"]: c for c in store.pool(POOL)["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "retry" in ready["message"]
    # Fixed, the pool resolves and the agent is built.
    store.put(pool_body(generation=3))
    reconciler.pool_changed(POOL, generation=3)
    await _eventually(lambda: len(store.children()) == 6)
    await reconciler.close()


async def test_a_missing_secret_key_is_reported_and_retried(store):
    store.secrets["llm-keys"] = {"anthropic"}
    reconciler = _reconciler(store)
    reconciler.secrets.ttl = 0.0
    await reconciler.reconcile_agent(AGENT)
    cond = {c["type"]: c for c in store.agent(AGENT)["status"]["conditions"]}["PoolResolved"]
    assert cond["reason"] == "SecretKeyMissing"
    assert "openrouter" in cond["message"] and "router" in cond["message"]
    assert store.children() == {}
    assert reconciler._agents.pending(AGENT)
    await reconciler.close()


async def test_a_secret_key_that_cannot_go_in_a_header_is_reported_never_its_value(store):
    store.secrets["llm-keys"] = {"anthropic": "\ufeffsk-ant-0123456789",
                                 "openrouter": "sk-or-0123456789\n"}  # fmt: skip
    reconciler = _reconciler(store)
    reconciler.secrets.ttl = 0.0
    await reconciler.reconcile_agent(AGENT)
    status = store.agent(AGENT)["status"]
    cond = {c["type"]: c for c in status["conditions"]}["PoolResolved"]
    assert (cond["status"], cond["reason"]) == ("False", "SecretKeyInvalid")
    assert "Secret 'llm-keys', key 'anthropic'" in cond["message"]
    assert "'claude'" in cond["message"] and "U+FEFF" in cond["message"]
    assert "sk-ant" not in json.dumps(status)
    assert store.children() == {}
    assert reconciler._agents.pending(AGENT)  # looked at again, as a missing key is
    store.secrets["llm-keys"]["anthropic"] = "sk-ant-0123456789"  # fixed
    await reconciler.reconcile_agent(AGENT)
    assert len(store.children()) == 6
    await reconciler.close()


def test_a_secret_s_values_are_judged_as_api_keys_and_only_the_verdict_is_kept():
    data = {"bom": "\ufeffsk-1234567".encode(), "newline": b"sk-1234567\n", "empty": b" \n",
            "latin1": b"sk-\xe9abc", "nul": b"sk-\x00abc"}  # fmt: skip
    body = {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    problems = secret_key_problems(body)
    assert problems["newline"] is None
    assert "U+FEFF at position 0" in (problems["bom"] or "")
    assert problems["empty"] == "is empty"
    assert problems["latin1"] == "is not UTF-8 text"
    assert "U+0000 at position 3" in (problems["nul"] or "")
    assert secret_key_problems({"data": {"k": "not base64!"}})["k"] == "is not valid base64"
    assert secret_key_problems({}) == {}


async def test_many_agents_share_one_secret_lookup(store):
    keys = put_agents(store, 20)
    reconciler = _reconciler(store)
    await asyncio.gather(*map(reconciler.reconcile_agent, keys))
    assert store.secret_reads == 1
    await reconciler.close()


async def test_suspending_scales_the_deployment_to_zero(store):
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    store.agent(AGENT)["spec"]["suspend"] = True
    store.agent(AGENT)["metadata"]["generation"] = 2
    await reconciler.reconcile_agent(AGENT)
    assert store.children()[("Deployment", "writer")]["spec"]["replicas"] == 0
    assert store.agent(AGENT)["status"]["phase"] == "Suspended"
    await reconciler.close()


async def test_a_deleted_child_is_recreated(store):
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    gone = store.objects.pop(("Deployment", NAMESPACE, "writer"))
    await reconciler.child_changed(gone, "DELETED")
    assert ("Deployment", "writer") in store.children()
    await reconciler.close()


async def test_an_edited_child_is_repaired_and_an_untouched_one_is_left_alone(store):
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    writes = len(store.writes)
    deployment = store.objects[("Deployment", NAMESPACE, "writer")]
    deployment["status"] = {"replicas": 1}  # what controllers add is no drift
    await reconciler.child_changed(deployment, "MODIFIED")
    assert len(store.writes) == writes
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    await reconciler.child_changed(deployment, "MODIFIED")
    repaired = store.objects[("Deployment", NAMESPACE, "writer")]
    assert repaired["spec"]["template"]["spec"]["containers"][0]["image"] != "evil:latest"
    await reconciler.close()


async def test_a_pool_change_rolls_the_agents_that_use_it(store):
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    before = store.children()[("ConfigMap", "writer-config")]["data"]["runner.yaml"]
    store.put(pool_body(strategy="round-robin", generation=2))
    reconciler.pool_changed(POOL, generation=2)
    await _eventually(
        lambda: store.children()[("ConfigMap", "writer-config")]["data"]["runner.yaml"] != before
    )
    assert "round-robin" in store.children()[("ConfigMap", "writer-config")]["data"]["runner.yaml"]
    await reconciler.close()


async def test_pool_status_is_written_once_per_change(store):
    store.agent(AGENT)["status"] = {"providers": [{"name": "claude", "healthy": True}]}
    reconciler = _reconciler(store)
    await reconciler.fold_pool(POOL)
    await reconciler.fold_pool(POOL)
    pool_writes = [w for w in store.writes if w[0] == "ProviderPool"]
    assert pool_writes == [("ProviderPool", "pool", "status")]
    assert store.pool(POOL)["status"]["agents"] == 1
    await reconciler.close()


async def test_a_failed_write_is_retried_later(store):
    store.fail_next = 1
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    assert reconciler._agents.pending(AGENT)
    await _eventually(lambda: len(store.children()) == 6)
    await reconciler.close()


async def test_a_failed_listing_of_children_is_retried_before_anything_is_written(store):
    store.fail_next = 1
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    assert store.children() == {} and reconciler._agents.pending(AGENT)
    await _eventually(lambda: len(store.children()) == 6)
    await reconciler.close()


def test_subset_ignores_what_the_server_adds_but_not_what_it_changes():
    desired = {"spec": {"ports": [{"port": 9100}], "replicas": 1}}
    assert is_subset(
        desired, {"spec": {"ports": [{"port": 9100, "protocol": "TCP"}], "replicas": 1}}
    )
    assert not is_subset(desired, {"spec": {"ports": [{"port": 9100}], "replicas": 0}})
    assert not is_subset(desired, {"spec": {"ports": [], "replicas": 1}})
    assert is_subset({"limits": {"cpu": 1}}, {"limits": {"cpu": "1"}})


async def test_an_agent_stuck_pending_with_no_pod_is_in_the_phase_gauge_and_leaves_it_when_deleted(
    store,
):
    from prometheus_client import CollectorRegistry

    from llmagents.operator.metrics import AgentGauges

    store.objects.pop(("ProviderPool", *POOL))
    registry = CollectorRegistry()
    reconciler = Reconciler(store, store, OperatorSettings(), clock=lambda: NOW,
                            resync_seconds=0.0, gauges=AgentGauges(registry))  # fmt: skip
    await reconciler.reconcile_agent(AGENT)
    assert store.children() == {}  # no Deployment, so no runner, so no runner metric
    labels = {"namespace": AGENT[0], "agent": AGENT[1], "phase": "Pending"}
    assert registry.get_sample_value("llmagents_agent_phase", labels) == 1.0
    reconciler.agent_gone(AGENT, None)
    assert registry.get_sample_value("llmagents_agent_phase", labels) is None
    await reconciler.close()


async def test_a_price_the_table_does_not_know_shows_on_the_pool_and_its_pending_agents(store):
    # "router" is a self-hosted OpenAI-compatible server without pricing: no table knows it.
    store.secrets.pop("llm-keys")  # and the agent is held back: no pod will run
    budgeted = agent_body(budget={"limit": 5.0})
    budgeted["metadata"].update(name="budgeted", uid="uid-b")
    store.put(budgeted)
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    await reconciler.reconcile_agent((NAMESPACE, "budgeted"))
    await reconciler.fold_pool(POOL)
    assert store.children() == {}

    pool = store.pool(POOL)["status"]
    prices = {p["name"]: p["price"] for p in pool["providers"]}
    assert prices["claude"]["source"].startswith("genai-prices ")
    assert prices["claude"]["model"] == "anthropic/claude-sonnet-4-5"
    assert prices["router"] == {"source": "unknown"}
    assert prices["local"]["source"] == "local"
    (unknown,) = [c for c in pool["conditions"] if c["type"] == "PriceUnknown"]
    assert (unknown["status"], unknown["reason"]) == ("True", "NoPriceForModel")
    assert "router: genai-prices" in unknown["message"] and "claude" not in unknown["message"]
    assert "meta-llama/llama-3.1-8b-instruct" in unknown["message"]

    for name, rule in (("writer", "no budget"), ("budgeted", "never calls them")):
        status = store.agent((NAMESPACE, name))["status"]
        assert status["phase"] == "Pending"
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["reason"] == "SecretNotFound"
        assert conditions["PriceUnknown"]["status"] == "True"
        assert "router:" in conditions["PriceUnknown"]["message"]
        assert rule in conditions["PriceUnknown"]["message"]
    await reconciler.close()


async def test_pricing_the_unknown_provider_clears_the_condition_on_pool_and_agents(store):
    reconciler = _reconciler(store)
    await reconciler.reconcile_agent(AGENT)
    await reconciler.fold_pool(POOL)
    body = pool_body(generation=2)
    body["spec"]["providers"][1]["pricing"] = {"inputPerMillion": 0.1, "outputPerMillion": 0.2}
    store.put(body)
    reconciler.pool_changed(POOL, 2)
    await reconciler.reconcile_agent(AGENT)
    await reconciler.fold_pool(POOL)
    for status in (store.pool(POOL)["status"], store.agent(AGENT)["status"]):
        (known,) = [c for c in status["conditions"] if c["type"] == "PriceUnknown"]
        assert (known["status"], known["reason"]) == ("False", "PricesKnown")
    router = next(p for p in store.pool(POOL)["status"]["providers"] if p["name"] == "router")
    assert router["price"]["source"] == "spec" and router["price"]["inputPerMillion"] == 0.1
    await reconciler.close()
