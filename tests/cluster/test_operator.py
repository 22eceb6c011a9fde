"""The operator on the real control plane: what each LLMAgent becomes, and what keeps it so.

Each test runs its own operator process (``llmagents operator``) watching only the test's
namespace; kwok takes the runner pods to Running without running them, so the runner's
status is written here by hand, with the runner's field manager, as the runner would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_crds import install_crds

from llmagents.api.runner_config import AgentIdentity
from llmagents.operator.rbac import operator_cluster_role
from llmagents.runner.configmap_store import owned_config_map
from tooling._components import free_port
from tooling.cluster import ClusterInfo, Kubectl
from tooling.polling import eventually

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHILD_KINDS = "deployment,configmap,serviceaccount,role,rolebinding,service"


class OperatorProcess:
    """``llmagents operator`` as a child process, with its probe/metrics port."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log = log
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_leading: bool = True) -> OperatorProcess:
        argv = [
            sys.executable, "-m", "llmagents.cli", "operator", "-n", self.namespace,
            "--liveness", str(self.port), "--liveness-host", "127.0.0.1", *self.extra,
        ]  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        eventually(lambda: self.probe("/healthz"), timeout=30, what="operator alive")
        if wait_leading:
            eventually(self.ready_leader, timeout=30, what="operator leading and ready")
        return self

    def probe(self, path: str) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(
                f"operator exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def ready_leader(self) -> bool:
        state = self.probe("/readyz")
        return bool(state and state["ready"] and state["leading"])

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return r.read().decode()

    def writes(self) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in self.metrics().splitlines()
            if line.startswith("llmagents_operator_api_writes_total")
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


@pytest.fixture
def start_operator(
    cluster: ClusterInfo, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(
        *extra: str, wait_leading: bool = True, kubeconfig: Path | None = None
    ) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        op = OperatorProcess(kubeconfig or cluster.kubeconfig, namespace, log, *extra)
        started.append(op)
        return op.start(wait_leading=wait_leading)

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator("--no-leader-election")


KEYS = {"anthropic": "k1", "openai": "k2", "gemini": "k3"}


def secret(kubectl: Kubectl, name: str = "llm-keys", **keys: str) -> None:
    args = [f"--from-literal={k}={v}" for k, v in (keys or KEYS).items()]
    kubectl("create", "secret", "generic", name, *args)


POOL = """
apiVersion: llmagents.dev/v1alpha1
kind: ProviderPool
metadata: {name: pool}
spec:
  strategy: priority
  providers:
    - {name: claude, type: anthropic, model: m, secretRef: {name: llm-keys, key: anthropic}}
    - {name: local, type: onnx, model: smollm2}
"""


def agent(name: str = "writer", **spec: Any) -> str:
    body = {
        "apiVersion": "llmagents.dev/v1alpha1",
        "kind": "LLMAgent",
        "metadata": {"name": name},
        "spec": {
            "poolRef": {"name": "pool"},
            "work": {"tasks": [{"name": "t1", "prompt": "one"}, {"name": "t2", "prompt": "two"}]},
            **spec,
        },
    }
    return json.dumps(body)


def runner_status(kubectl: Kubectl, name: str, status: dict[str, Any]) -> None:
    """Write status as the runner does: server-side apply under the runner's manager."""
    body = {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
            "metadata": {"name": name}, "status": status}  # fmt: skip
    kubectl(
        "apply", "--server-side", "--field-manager=llmagents-runner", "--subresource=status",
        "-f", "-", input=json.dumps(body),
    )  # fmt: skip


def get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any] | None:
    result = kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def conditions(kubectl: Kubectl, name: str) -> dict[str, dict[str, Any]]:
    body = get(kubectl, "llmagent", name) or {}
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


def owned(kubectl: Kubectl, name: str) -> list[str]:
    out = kubectl("get", CHILD_KINDS, "-l", f"llmagents.dev/agent={name}", "-o", "name").stdout
    return sorted(out.split())


def expected_children(name: str) -> list[str]:
    return sorted(
        [
            f"deployment.apps/{name}",
            f"configmap/{name}-config",
            f"serviceaccount/{name}-runner",
            f"role.rbac.authorization.k8s.io/{name}-runner",
            f"rolebinding.rbac.authorization.k8s.io/{name}-runner",
            f"service/{name}-metrics",
        ]
    )


def writer_with_children(kubectl: Kubectl) -> None:
    """The Secret, the pool and the agent ``writer``, once the operator made its children."""
    secret(kubectl)
    kubectl.apply(POOL)
    kubectl.apply(agent())
    eventually(lambda: owned(kubectl, "writer") == expected_children("writer"))


def runner_identity(namespace: str) -> str:
    """kubectl's flag to act as the agent ``writer``'s runner."""
    return f"--as=system:serviceaccount:{namespace}:writer-runner"


def deployed(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return eventually(lambda: get(kubectl, "deployment", name), what=f"Deployment {name}")


EXAMPLE_CONTAINERS = {
    "quickstart.yaml": {"quickstart": ["runner", "onnx"]},
    "cost-optimized.yaml": {"digest": ["runner"]},
    "24x7.yaml": {"support-bot": ["runner", "onnx", "agent"]},
    "budget.yaml": {"frugal": ["runner", "onnx"]},
}


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").glob("*.yaml")))
def test_every_example_applies_and_produces_exactly_the_expected_resources(
    kubectl: Kubectl, operator: OperatorProcess, example: str
) -> None:
    assert example in EXAMPLE_CONTAINERS, f"say which agents and containers {example} makes"
    text = (REPO / "examples" / example).read_text()
    if not any(d and d["kind"] == "Secret" for d in yaml.safe_load_all(text)):
        secret(kubectl)
    kubectl.apply(text)
    for name, containers in EXAMPLE_CONTAINERS[example].items():
        eventually(
            lambda n=name: owned(kubectl, n) == expected_children(n), what=f"{name}'s children"
        )
        deployment = deployed(kubectl, name)
        pod = deployment["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["containers"]] == containers
        assert deployment["metadata"]["ownerReferences"][0]["name"] == name
        ready = eventually(lambda n=name: conditions(kubectl, n).get("PoolResolved"))
        assert ready["status"] == "True"
        assert get(kubectl, "llmagent", name)["status"]["phase"] == "Pending"  # no runner here


def test_pool_change_reaches_every_agent_and_rolls_its_deployment(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    secret(kubectl)
    kubectl.apply(POOL)
    kubectl.apply(agent("a1"))
    kubectl.apply(agent("a2"))
    before = {
        n: deployed(kubectl, n)["spec"]["template"]["metadata"]["annotations"] for n in ("a1", "a2")
    }
    kubectl(
        "patch", "providerpool", "pool", "--type=merge", "-p", '{"spec":{"strategy":"round-robin"}}'
    )

    def config(name: str) -> str:
        return get(kubectl, "configmap", f"{name}-config")["data"]["runner.yaml"]

    for name in ("a1", "a2"):
        eventually(lambda n=name: "round-robin" in config(n), what=f"{name}'s configuration")
        after = deployed(kubectl, name)["spec"]["template"]["metadata"]["annotations"]
        assert after != before[name]
        eventually(
            lambda n=name: get(kubectl, "llmagent", n)["status"].get("strategy") == "round-robin"
        )


def test_a_missing_pool_or_secret_is_a_condition_and_no_deployment_until_it_exists(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    kubectl.apply(agent())
    pool = eventually(lambda: conditions(kubectl, "writer").get("PoolResolved"))
    assert (pool["status"], pool["reason"]) == ("False", "PoolNotFound")
    assert get(kubectl, "llmagent", "writer")["status"]["phase"] == "Pending"
    kubectl.apply(POOL)
    eventually(lambda: conditions(kubectl, "writer")["PoolResolved"]["reason"] == "SecretNotFound")
    assert get(kubectl, "deployment", "writer") is None
    secret(kubectl)
    deployed(kubectl, "writer")
    assert conditions(kubectl, "writer")["PoolResolved"]["status"] == "True"


def test_a_deleted_or_edited_deployment_is_repaired(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    secret(kubectl)
    kubectl.apply(POOL)
    kubectl.apply(agent())
    first = deployed(kubectl, "writer")
    kubectl("delete", "deployment", "writer")
    again = eventually(
        lambda: (
            (d := get(kubectl, "deployment", "writer"))
            and d["metadata"]["uid"] != first["metadata"]["uid"]
            and d
        )
    )
    image = again["spec"]["template"]["spec"]["containers"][0]["image"]
    kubectl("set", "image", "deployment/writer", "runner=example.test/evil:1")

    def runner_image() -> str:
        return get(kubectl, "deployment", "writer")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]

    eventually(lambda: runner_image() == image, what="image restored")
    kubectl("scale", "deployment/writer", "--replicas=3")
    eventually(
        lambda: get(kubectl, "deployment", "writer")["spec"]["replicas"] == 1,
        what="replicas restored",
    )


def test_a_resync_repairs_a_deleted_config_map_and_a_widened_role(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess], namespace: str
) -> None:
    start_operator("--no-leader-election", "--resync-seconds", "2")
    writer_with_children(kubectl)
    config = get(kubectl, "configmap", "writer-config")["data"]
    rules = get(kubectl, "role", "writer-runner")["rules"]
    kubectl("delete", "configmap", "writer-config")
    widened = [*rules, {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    kubectl("patch", "role", "writer-runner", "--type=merge", "-p",
            json.dumps({"rules": widened}))  # fmt: skip
    eventually(lambda: (get(kubectl, "configmap", "writer-config") or {}).get("data") == config,
               what="ConfigMap recreated")  # fmt: skip
    eventually(lambda: get(kubectl, "role", "writer-runner")["rules"] == rules,
               what="Role narrowed again")  # fmt: skip
    result = kubectl("auth", "can-i", "get", "secrets/llm-keys", runner_identity(namespace),
                     check=False)  # fmt: skip
    assert result.stdout.strip() == "no"


def _versions(kubectl: Kubectl, name: str) -> dict[str, str]:
    out = kubectl.json("get", f"{CHILD_KINDS},llmagent,providerpool")
    return {
        f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
        for i in out["items"]
    }


def test_an_operator_restart_duplicates_nothing_and_writes_nothing(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess]
) -> None:
    first = start_operator("--no-leader-election")
    writer_with_children(kubectl)
    eventually(lambda: get(kubectl, "providerpool", "pool").get("status", {}).get("agents") == 1)
    settled = _versions(kubectl, "writer")
    first.stop()
    second = start_operator("--no-leader-election")
    # Absence of writes can only be observed over a window: give the new process time to
    # list everything and run every handler once.
    time.sleep(3)
    assert second.writes() == 0
    assert _versions(kubectl, "writer") == settled
    assert owned(kubectl, "writer") == expected_children("writer")


CAN = [
    ("get", "llmagents.llmagents.dev/writer", ""),
    ("watch", "llmagents.llmagents.dev/writer", ""),
    ("patch", "llmagents.llmagents.dev/writer", "status"),
    ("get", "configmaps/writer-config", ""),
    ("watch", "configmaps/writer-config", ""),
    ("get", "configmaps/writer-checkpoint", ""),
    ("create", "configmaps/writer-checkpoint", ""),
    ("update", "configmaps/writer-checkpoint", ""),
    ("patch", "configmaps/writer-checkpoint", ""),
    ("create", "configmaps/writer-results-0", ""),
    ("patch", "configmaps/writer-results-3", ""),
    ("get", "providerpools.llmagents.dev/pool", ""),  # the fleet's view of provider health
    ("create", "events.events.k8s.io", ""),
    ("patch", "events.events.k8s.io/writer.abc.123", ""),
    ("list", "events.events.k8s.io", ""),  # to continue its series after a restart
]
CANNOT = [
    ("patch", "llmagents.llmagents.dev/writer", ""),  # its spec is the user's
    ("patch", "llmagents.llmagents.dev/other", "status"),
    ("delete", "llmagents.llmagents.dev/writer", ""),
    ("update", "configmaps/writer-config", ""),
    ("get", "configmaps/other-config", ""),
    ("create", "configmaps", ""),
    ("create", "configmaps/other-checkpoint", ""),
    ("create", "configmaps/writer-results-4", ""),
    ("delete", "configmaps/writer-checkpoint", ""),
    ("get", "secrets/llm-keys", ""),
    ("list", "secrets", ""),
    ("patch", "providerpools.llmagents.dev/pool", "status"),
    ("get", "providerpools.llmagents.dev/other", ""),
    ("create", "pods", ""),
    ("list", "llmagents.llmagents.dev", ""),
    ("get", "events.events.k8s.io/writer.abc.123", ""),
    ("delete", "events.events.k8s.io/writer.abc.123", ""),
    ("create", "events", ""),  # core/v1 Events: the runner writes events.k8s.io only
]


def test_the_runner_service_account_can_do_exactly_what_it_needs(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    writer_with_children(kubectl)
    who = runner_identity(namespace)

    def can(verb: str, what: str, sub: str) -> bool:
        extra = [f"--subresource={sub}"] if sub else []
        result = kubectl("auth", "can-i", verb, what, *extra, who, check=False)
        return result.stdout.strip() == "yes"

    assert [c for c in CAN if not can(*c)] == []
    assert [c for c in CANNOT if can(*c)] == []


def _as_runner(kubectl: Kubectl, namespace: str, name: str, *args: str) -> bool:
    """Send the runner's own ConfigMap ``name`` as the runner's ServiceAccount would."""
    agent_uid = kubectl.json("get", "llmagent", "writer")["metadata"]["uid"]
    owner = AgentIdentity(name="writer", namespace=namespace, uid=agent_uid)
    manifest = json.dumps(owned_config_map(owner, name))
    who = runner_identity(namespace)
    return kubectl(*args, "-f", "-", who, input=manifest, check=False).returncode == 0


def test_the_runner_creates_its_own_config_maps_by_apply_and_no_others(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    writer_with_children(kubectl)
    apply = ("apply", "--server-side", "--field-manager=llmagents-runner")
    assert _as_runner(kubectl, namespace, "writer-checkpoint", *apply)
    assert _as_runner(kubectl, namespace, "writer-results-0", *apply)
    assert not _as_runner(kubectl, namespace, "other-checkpoint", *apply)
    # A POST names no object, so the named create right does not cover it.
    assert not _as_runner(kubectl, namespace, "writer-results-1", "create")
    assert get(kubectl, "configmap", "writer-results-1") is None


def test_deleting_an_agent_removes_everything_it_owned(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    writer_with_children(kubectl)
    assert _as_runner(kubectl, namespace, "writer-checkpoint", "apply", "--server-side")
    kubectl("delete", "llmagent", "writer")
    eventually(lambda: owned(kubectl, "writer") == [], what="garbage collection")


def _replicas_and_phase(kubectl: Kubectl, name: str) -> tuple[int, str]:
    deployment = get(kubectl, "deployment", name) or {"spec": {}}
    status = (get(kubectl, "llmagent", name) or {}).get("status") or {}
    return deployment["spec"].get("replicas", -1), status.get("phase", "")


def test_suspend_spent_budget_and_max_runtime_scale_to_zero_with_their_phase(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    secret(kubectl)
    kubectl.apply(POOL)
    kubectl.apply(agent("s"))
    kubectl.apply(agent("b", budget={"limit": 1.0}))
    kubectl.apply(agent("m", maxRuntime="1s"))
    deployed(kubectl, "s")
    kubectl("patch", "llmagent", "s", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    eventually(lambda: _replicas_and_phase(kubectl, "s") == (0, "Suspended"))
    kubectl("patch", "llmagent", "s", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    eventually(lambda: _replicas_and_phase(kubectl, "s")[0] == 1)

    deployed(kubectl, "b")
    runner_status(kubectl, "b", {"budgetExhausted": True, "cost": {"spentUSD": 1.02},
                                 "providers": [{"name": "claude", "healthy": True}]})  # fmt: skip
    eventually(lambda: _replicas_and_phase(kubectl, "b") == (0, "BudgetExhausted"))
    assert conditions(kubectl, "b")["BudgetAvailable"]["reason"] == "BudgetExhausted"

    eventually(lambda: _replicas_and_phase(kubectl, "m") == (0, "Completed"))
    assert conditions(kubectl, "m")["Ready"]["reason"] == "MaxRuntimeReached"


def test_runner_fields_survive_the_operators_status_writes(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    secret(kubectl)
    kubectl.apply(POOL)
    kubectl.apply(agent())
    deployed(kubectl, "writer")
    report = {
        "currentProvider": "claude",
        "providers": [{"name": "claude", "healthy": True}, {"name": "local", "healthy": False}],
        "healthy": "1/2",
        "cost": {"spentUSD": 0.5, "totalUSD": 0.5},
        "tokens": {"input": 100, "output": 50},
        "tasks": {"done": 1, "total": 2, "summary": "1/2"},
    }
    runner_status(kubectl, "writer", report)
    eventually(lambda: get(kubectl, "llmagent", "writer")["status"].get("phase") == "Degraded")
    kubectl("patch", "llmagent", "writer", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    eventually(lambda: get(kubectl, "llmagent", "writer")["status"].get("phase") == "Suspended")
    status = get(kubectl, "llmagent", "writer")["status"]
    assert {k: status[k] for k in report} == report
    fields = kubectl.json("get", "llmagent", "writer", "--show-managed-fields")
    managers = {
        m["manager"]
        for m in fields["metadata"]["managedFields"]
        if m.get("subresource") == "status"
    }
    assert managers == {"llmagents-operator", "llmagents-runner"}


def test_pool_status_folds_what_its_agents_report(
    kubectl: Kubectl, operator: OperatorProcess
) -> None:
    secret(kubectl)
    kubectl.apply(POOL)
    for name in ("a1", "a2"):
        kubectl.apply(agent(name))
    runner_status(kubectl, "a1", {"providers": [
        {"name": "claude", "healthy": False, "breakerState": "open"},
        {"name": "local", "healthy": True}]})  # fmt: skip
    runner_status(kubectl, "a2", {"providers": [
        {"name": "claude", "healthy": False, "breakerState": "open"},
        {"name": "local", "healthy": True}]})  # fmt: skip

    def folded() -> dict[str, Any] | None:
        status = (get(kubectl, "providerpool", "pool") or {}).get("status") or {}
        return status if status.get("openBreakers") == 2 else None

    status = eventually(folded, what="pool status")
    assert (status["agents"], status["healthy"], status["providerCount"]) == (2, "1/2", 2)
    row = kubectl("get", "providerpools").stdout.splitlines()[1].split()
    assert row[:5] == ["pool", "priority", "2", "1/2", "2"]


def test_two_replicas_lead_one_at_a_time_and_fail_over(
    kubectl: Kubectl, start_operator: Callable[..., OperatorProcess], namespace: str
) -> None:
    flags = ("--lease-namespace", namespace, "--lease-seconds", "4", "--renew-seconds", "1")
    first = start_operator(*flags)
    second = start_operator(*flags, wait_leading=False)
    assert second.probe("/healthz")["leading"] is False
    assert second.probe("/readyz")["ready"] is True  # a standby is ready to take over
    secret(kubectl)
    kubectl.apply(POOL)
    kubectl.apply(agent("a1"))
    deployed(kubectl, "a1")
    first.stop(signal.SIGKILL)  # no release: the standby must wait out the Lease
    eventually(second.ready_leader, timeout=30, what="the standby to take over")
    kubectl.apply(agent("a2"))
    deployed(kubectl, "a2")
    lease = kubectl.json("get", "lease", "llmagents-operator")
    assert lease["spec"]["leaseTransitions"] >= 1


def test_the_operator_needs_no_more_than_its_cluster_role(
    kubectl: Kubectl,
    cluster: ClusterInfo,
    namespace: str,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    name = f"llmagents-operator-{namespace}"
    kubectl.apply(json.dumps(operator_cluster_role(name)))
    try:
        kubectl("create", "serviceaccount", "operator")
        kubectl(
            "create", "clusterrolebinding", name, f"--clusterrole={name}",
            f"--serviceaccount={namespace}:operator",
        )  # fmt: skip
        token = kubectl("create", "token", "operator", "--duration=1h").stdout.strip()
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
        restricted = tmp_path / "operator.kubeconfig"
        restricted.write_text(json.dumps(config))
        start_operator("--lease-namespace", namespace, kubeconfig=restricted)
        writer_with_children(kubectl)
        eventually(lambda: get(kubectl, "llmagent", "writer")["status"].get("phase") == "Pending")
        eventually(
            lambda: (get(kubectl, "providerpool", "pool").get("status") or {}).get("agents") == 1
        )
    finally:
        kubectl("delete", "clusterrolebinding", name, "--ignore-not-found")
        kubectl("delete", "clusterrole", name, "--ignore-not-found")
