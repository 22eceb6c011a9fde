"""The generated CRDs on the real API server: accepted, explained, validated, printed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tooling.cluster import ClusterInfo, Kubectl

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]


def install_crds(cluster: ClusterInfo) -> None:
    """Apply crds/ and wait until the API server serves both kinds."""
    kubectl = Kubectl(cluster.kubectl, cluster.kubeconfig, "default")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/llmagents.llmagents.dev", "crd/providerpools.llmagents.dev",
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def crds(cluster: ClusterInfo) -> None:
    install_crds(cluster)


POOL: dict[str, Any] = {
    "apiVersion": "llmagents.dev/v1alpha1",
    "kind": "ProviderPool",
    "metadata": {"name": "pool"},
    "spec": {
        "providers": [
            {
                "name": "claude",
                "type": "anthropic",
                "model": "claude-sonnet-4-5",
                "secretRef": {"name": "keys", "key": "anthropic"},
            },
            {"name": "local", "type": "onnx", "model": "smollm2"},
        ]
    },
}
AGENT: dict[str, Any] = {
    "apiVersion": "llmagents.dev/v1alpha1",
    "kind": "LLMAgent",
    "metadata": {"name": "writer"},
    "spec": {"poolRef": {"name": "pool"}, "work": {"tasks": [{"name": "t1", "prompt": "hi"}]}},
}


def _with(base: dict, path: str, value: Any) -> dict:
    """A copy of ``base`` with the dotted ``path`` set (list indexes as numbers)."""
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


_REMOTE = {"name": "gpt", "type": "openai", "model": "m", "secretRef": {"name": "keys"}}

INVALID = [
    # (id, manifest, what the user must read)
    ("duplicate-provider", _with(POOL, "spec.providers.1", {**_REMOTE, "name": "claude"}),
     "provider names must be unique within the pool"),
    ("remote-without-secret", _with(POOL, "spec.providers.0.secretRef", None),
     "need a secretRef"),
    ("zero-recovery-time", _with(POOL, "spec.circuitBreaker", {"recoveryTime": "0s"}),
     "recoveryTime must be greater than zero"),
    ("max-recovery-below-recovery",
     _with(POOL, "spec.circuitBreaker", {"recoveryTime": "1m", "maxRecoveryTime": "10s"}),
     "maxRecoveryTime must be at least recoveryTime"),
    ("default-model-names-nothing", _with(POOL, "spec.defaultModel", "smart"),
     "defaultModel must name a provider of the pool or an alias in models"),
    ("capability-not-a-boolean", _with(POOL, "spec.providers.0.capabilities", {"tools": "yes"}),
     "spec.providers[0].capabilities.tools"),
    ("unknown-provider-type", _with(POOL, "spec.providers.0.type", "cohere"),
     'Unsupported value: "cohere"'),
    ("unknown-tier", _with(POOL, "spec.providers.0.tier", "ultra"), 'Unsupported value: "ultra"'),
    ("no-providers", _with(POOL, "spec.providers", []), "should have at least 1 items"),
    ("duration-in-words", _with(POOL, "spec.providers.0.timeout", "10 seconds"),
     "spec.providers[0].timeout"),
    ("negative-priority", _with(POOL, "spec.providers.0.priority", -1),
     "should be greater than or equal to 0"),
    ("provider-name-not-dns", _with(POOL, "spec.providers.0.name", "Claude_1"),
     "spec.providers[0].name"),
    ("base-url-not-http", _with(POOL, "spec.providers.0.baseURL", "ftp://example.test"),
     "spec.providers[0].baseURL"),
    ("plain-http-base-url-off-loopback",
     _with(POOL, "spec.providers.0.baseURL", "http://vllm.internal:8000/v1"),
     "baseURL must be https:// for a provider that sends an API key"),
    ("plain-http-base-url-to-a-lookalike-host",
     _with(POOL, "spec.providers.0.baseURL", "http://127.0.0.1.example.test/v1"),
     "set allowInsecureBaseURL: true on this provider"),
    ("zero-failure-threshold",
     _with(POOL, "spec.circuitBreaker", {"failureRate": {"threshold": 0}}),
     "spec.circuitBreaker.failureRate.threshold"),
    ("unknown-strategy-override", _with(AGENT, "spec.strategy", "cheapest"),
     'Unsupported value: "cheapest"'),
    ("tasks-and-agent",
     _with(AGENT, "spec.work.agent", {"image": "example.test/agent:1"}),
     "work needs exactly one of tasks"),
    ("no-work", _with(AGENT, "spec.work", {}), "work needs exactly one of tasks"),
    ("zero-budget", _with(AGENT, "spec.budget", {"limit": 0}),
     "budget.limit must be a positive amount of USD"),
    ("unknown-on-exhausted", _with(AGENT, "spec.budget", {"limit": 1, "onExhausted": "pause"}),
     'Unsupported value: "pause"'),
    ("zero-checkpoint-interval", _with(AGENT, "spec.checkpointInterval", "0s"),
     "checkpointInterval must be at least 1s"),
    ("zero-max-runtime", _with(AGENT, "spec.maxRuntime", "0s"),
     "maxRuntime must be greater than zero"),
    ("sub-second-checkpoint-interval", _with(AGENT, "spec.checkpointInterval", "500ms"),
     "checkpointInterval must be at least 1s"),
    # Durations past what a Go or CEL duration holds (about 292 years), with and without a
    # rule of their own, and just past the API's bound.
    ("overflowing-checkpoint-interval", _with(AGENT, "spec.checkpointInterval", "99999999999h"),
     "spec.checkpointInterval: Invalid value"),
    ("overflowing-max-runtime", _with(AGENT, "spec.maxRuntime", "99999999999h"),
     "spec.maxRuntime: Invalid value"),
    ("overflowing-retry-delay", _with(POOL, "spec.retry", {"initialDelay": "99999999999h"}),
     "spec.retry.initialDelay: Invalid value"),
    ("overflowing-health-window", _with(POOL, "spec.health", {"window": "99999999999h"}),
     "spec.health.window: Invalid value"),
    ("overflowing-timeout", _with(POOL, "spec.providers.0.timeout", "99999999999h"),
     "spec.providers[0].timeout: Invalid value"),
    ("duration-past-the-bound", _with(POOL, "spec.retry", {"maxDelay": "87600h1s"}),
     "a duration must be at most 87600h (10 years)"),
    ("many-parts-adding-up", _with(POOL, "spec.retry", {"maxDelay": "90000h" * 9}),
     "spec.retry.maxDelay: Invalid value"),
    ("prompt-and-messages",
     _with(AGENT, "spec.work.tasks.0.messages", [{"role": "user", "content": "x"}]),
     "set exactly one of prompt or messages"),
    ("duplicate-task", _with(AGENT, "spec.work.tasks", [{"name": "a", "prompt": "x"}] * 2),
     "Duplicate value"),
    ("name-too-long", _with(AGENT, "metadata.name", "a" * 48),
     "LLMAgent names are at most 47 characters"),
    ("no-pool-ref", {**AGENT, "spec": {"work": AGENT["spec"]["work"]}}, "spec.poolRef: Required"),
    ("typo-in-field", _with(AGENT, "spec.budgett", {"limit": 1}), 'unknown field "spec.budgett"'),
    ("bad-quantity", _with(AGENT, "spec.resources", {"limits": {"cpu": "lots"}}),
     "spec.resources.limits.cpu"),
    ("two-model-volumes",
     _with(AGENT, "spec.onnx", {"modelVolume": {"claimName": "m", "hostPath": "/models"}}),
     "modelVolume needs exactly one of claimName or hostPath"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_manifest_is_rejected_with_a_message_the_user_can_act_on(
    kubectl: Kubectl, manifest: dict, message: str
) -> None:
    result = kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0, f"accepted: {json.dumps(manifest)}"
    assert message in result.stderr


def test_the_valid_base_manifests_are_accepted_with_defaults_filled_in(kubectl: Kubectl) -> None:
    kubectl.apply(json.dumps(POOL))
    kubectl.apply(json.dumps(AGENT))
    pool = kubectl.json("get", "providerpool", "pool")["spec"]
    assert pool["strategy"] == "priority"
    assert pool["circuitBreaker"]["recoveryTime"] == "30s"
    assert pool["providers"][0]["secretRef"]["key"] == "anthropic"
    assert pool["providers"][1]["tier"] == "balanced"
    agent = kubectl.json("get", "llmagent", "writer")["spec"]
    assert agent["checkpointInterval"] == "30s" and agent["suspend"] is False


@pytest.mark.parametrize(
    "provider",
    [{"baseURL": "https://api.example.test/v1"}, {"baseURL": "http://127.0.0.1:18081"},
     {"baseURL": "http://localhost:8000/v1"}, {"baseURL": "http://[::1]:8000"},
     {"baseURL": "http://vllm.models.svc:8000/v1", "allowInsecureBaseURL": True}],
)  # fmt: skip
def test_https_loopback_or_an_opt_in_lets_a_base_url_carry_the_key(
    kubectl: Kubectl, provider: dict
) -> None:
    pool = _with(POOL, "spec.providers.0", {**POOL["spec"]["providers"][0], **provider})
    kubectl.apply(json.dumps(pool))
    stored = kubectl.json("get", "providerpool", "pool")["spec"]["providers"][0]
    assert stored["baseURL"] == provider["baseURL"]
    assert stored["allowInsecureBaseURL"] is provider.get("allowInsecureBaseURL", False)


def test_kubectl_explain_reads_the_model_documentation(kubectl: Kubectl) -> None:
    budget = kubectl("explain", "llmagent.spec.budget").stdout
    assert "A hard spending limit in US dollars" in budget or "Spending limit" in budget
    assert "onExhausted" in budget
    on_exhausted = kubectl("explain", "llmagent.spec.budget.onExhausted").stdout
    assert "local-only: Continue on free providers only" in " ".join(on_exhausted.split())
    strategy = kubectl("explain", "providerpool.spec.strategy").stdout
    assert "cost-optimized" in strategy


def _runner_status(kubectl: Kubectl, name: str, status: dict) -> None:
    body = {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
            "metadata": {"name": name}, "status": status}  # fmt: skip
    kubectl(
        "apply", "--server-side", "--field-manager=llmagents-runner", "--subresource=status",
        "-f", "-", input=json.dumps(body),
    )  # fmt: skip


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_kubectl_get_shows_the_printer_columns(kubectl: Kubectl) -> None:
    kubectl.apply(json.dumps(POOL))
    kubectl.apply(json.dumps(_with(AGENT, "spec.budget", {"limit": 5})))
    _runner_status(
        kubectl,
        "writer",
        {
            "currentProvider": "claude",
            "providers": [{"name": "claude", "healthy": True}, {"name": "local", "healthy": False}],
            "healthy": "1/2",
            "cost": {"spentUSD": 0.25, "display": "$0.25"},
            "tasks": {"done": 1, "total": 1, "summary": "1/1"},
            "lastCheckpoint": "2030-01-01T00:00:00Z",
        },
    )
    kubectl(
        "patch", "llmagent", "writer", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Degraded", "strategy": "priority"}}),
    )  # fmt: skip
    header, row = _table(kubectl("get", "llmagents").stdout)
    assert header == ["NAME", "PHASE", "PROVIDER", "HEALTHY", "COST", "BUDGET", "TASKS", "AGE"]
    assert row[:7] == ["writer", "Degraded", "claude", "1/2", "$0.25", "5", "1/1"]
    wide_header, wide_row = _table(kubectl("get", "llmagents", "-o", "wide").stdout)
    assert wide_header[-2:] == ["STRATEGY", "LAST-CHECKPOINT"]
    assert wide_row[-2] == "priority"
    pools_header = _table(kubectl("get", "providerpools").stdout)[0]
    assert pools_header == ["NAME", "STRATEGY", "PROVIDERS", "HEALTHY", "OPEN-BREAKERS", "AGE"]


def test_short_names_and_the_llm_category_list_both_kinds(kubectl: Kubectl) -> None:
    kubectl.apply(json.dumps(POOL))
    kubectl.apply(json.dumps(AGENT))
    assert "writer" in kubectl("get", "llma").stdout
    assert "pool" in kubectl("get", "pp").stdout
    both = kubectl("get", "llm", "-o", "name").stdout.split()
    assert sorted(both) == ["llmagent.llmagents.dev/writer", "providerpool.llmagents.dev/pool"]


def test_crd_files_are_what_the_server_stores(cluster: ClusterInfo) -> None:
    kubectl = Kubectl(cluster.kubectl, cluster.kubeconfig, "default")
    for path in sorted((REPO / "crds").glob("*.yaml")):
        local = yaml.safe_load(path.read_text())
        stored = kubectl.json("get", "crd", local["metadata"]["name"])
        assert stored["spec"]["versions"][0]["schema"] == local["spec"]["versions"][0]["schema"]
