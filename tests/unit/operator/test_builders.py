"""The manifests an agent becomes: built from agent + pool + settings, nothing else."""

from __future__ import annotations

import pytest
from operator_samples import agent_body, pool_body

from llmagents.api.runner_config import RunnerConfig
from llmagents.operator.builders import children
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.rbac import operator_rules, runner_rules
from llmagents.operator.settings import ANNOTATION_CONFIG_HASH, ANNOTATION_HASH, OperatorSettings

SETTINGS = OperatorSettings(image="example.test/llmagents:dev")


def _build(agent: dict | None = None, pool: dict | None = None, *, replicas: int = 1) -> dict:
    manifests = children(
        AgentObject.from_body(agent or agent_body()),
        PoolObject.from_body(pool or pool_body()),
        SETTINGS,
        replicas=replicas,
    )
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def _deployment(built: dict) -> dict:
    return built[("Deployment", "writer")]


def _containers(built: dict) -> dict[str, dict]:
    return {c["name"]: c for c in _deployment(built)["spec"]["template"]["spec"]["containers"]}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_an_agent_owns_exactly_six_objects_all_owned_and_labelled():
    # The checkpoint and results ConfigMaps are the runner's to create (configmap_store).
    built = _build()
    assert sorted(built) == [
        ("ConfigMap", "writer-config"),
        ("Deployment", "writer"),
        ("Role", "writer-runner"),
        ("RoleBinding", "writer-runner"),
        ("Service", "writer-metrics"),
        ("ServiceAccount", "writer-runner"),
    ]
    for manifest in built.values():
        meta = manifest["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "llmagents.dev/v1alpha1",
                "kind": "LLMAgent",
                "name": "writer",
                "uid": "agent-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "llmagents-operator"
        assert meta["labels"]["llmagents.dev/agent"] == "writer"
        assert len(meta["annotations"][ANNOTATION_HASH]) == 16


def test_config_map_holds_the_resolved_configuration_and_no_secret():
    agent = agent_body(strategy="cost-optimized", budget={"limit": 2.5})
    text = _build(agent)[("ConfigMap", "writer-config")]["data"]["runner.yaml"]
    config = RunnerConfig.from_yaml(text)
    assert config.agent.name == "writer" and config.agent.uid == "agent-uid"
    assert config.pool_name == "pool"
    assert config.pool.strategy.value == "cost-optimized"  # the override, not the pool's
    assert config.mode.value == "tasks" and [t.name for t in config.tasks] == ["t1", "t2"]
    assert config.budget is not None and config.budget.limit == 2.5
    assert config.api_key_env == {
        "claude": "LLMAGENTS_API_KEY_CLAUDE",
        "router": "LLMAGENTS_API_KEY_ROUTER",
    }
    assert config.onnx_url == "http://127.0.0.1:8090"
    assert config.checkpoint_config_map == "writer-checkpoint"
    assert "llm-keys" in text and "anthropic" in text  # references only


def test_deployment_runs_one_runner_recreated_never_overlapping():
    deployment = _deployment(_build())
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "writer-runner"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_runner_and_sidecar_get_the_operator_s_default_resources_unless_the_agent_sets_them():
    from dataclasses import replace

    runner_default = {"requests": {"memory": "96Mi"}, "limits": {"memory": "256Mi"}}
    onnx_default = {"requests": {"memory": "384Mi"}, "limits": {"memory": "768Mi"}}
    settings = replace(SETTINGS, runner_resources=runner_default, onnx_resources=onnx_default)

    def containers(body: dict, s: OperatorSettings) -> dict[str, dict]:
        built = children(AgentObject.from_body(body), PoolObject.from_body(pool_body()), s,
                         replicas=1)  # fmt: skip
        deployment = next(m for m in built if m["kind"] == "Deployment")
        return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}

    defaulted = containers(agent_body(), settings)
    assert defaulted["runner"]["resources"] == runner_default
    assert defaulted["onnx"]["resources"] == onnx_default
    own = agent_body()
    own["spec"]["resources"] = {"limits": {"memory": "1Gi"}}
    assert containers(own, settings)["runner"]["resources"] == {"limits": {"memory": "1Gi"}}
    assert "resources" not in containers(agent_body(), SETTINGS)["runner"]


def test_runner_container_gets_identity_ports_and_keys_by_reference():
    runner = _containers(_build())["runner"]
    assert runner["image"] == "example.test/llmagents:dev"
    assert runner["args"] == ["runner"]
    env = _env(runner)
    assert env["LLMAGENTS_AGENT"]["value"] == "writer"
    assert env["LLMAGENTS_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["LLMAGENTS_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["LLMAGENTS_CONFIG_MAP"]["value"] == "writer-config"
    assert env["LLMAGENTS_METRICS_PORT"]["value"] == "9100"
    assert env["LLMAGENTS_ONNX_URL"]["value"] == "http://127.0.0.1:8090"
    assert env["LLMAGENTS_API_KEY_CLAUDE"]["valueFrom"] == {
        "secretKeyRef": {"name": "llm-keys", "key": "anthropic"}
    }
    assert "LLMAGENTS_API_KEY_LOCAL" not in env
    assert [p["containerPort"] for p in runner["ports"]] == [9100]
    assert runner["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert runner["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_onnx_sidecar_only_when_the_pool_has_an_onnx_provider():
    with_onnx = _containers(_build())
    assert with_onnx["onnx"]["args"] == ["onnx-server"]
    assert with_onnx["onnx"]["ports"][0]["containerPort"] == 8090
    without = _containers(_build(pool=pool_body(onnx=False)))
    assert set(without) == {"runner"}
    assert "LLMAGENTS_ONNX_URL" not in _env(without["runner"])


def test_onnx_model_volume_is_mounted_read_only_for_the_sidecar():
    agent = agent_body(
        onnx={
            "image": "example.test/onnx:1",
            "modelVolume": {"claimName": "models", "subPath": "smol"},
        }
    )
    built = _build(agent)
    sidecar = _containers(built)["onnx"]
    assert sidecar["image"] == "example.test/onnx:1"
    assert _env(sidecar)["LLMAGENTS_ONNX_MODEL_DIR"]["value"] == "/models/smol"
    assert sidecar["volumeMounts"] == [{"name": "model", "mountPath": "/models", "readOnly": True}]
    volumes = _deployment(built)["spec"]["template"]["spec"]["volumes"]
    assert [v for v in volumes if v["name"] == "model"] == [
        {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}
    ]


def test_gateway_mode_adds_the_agent_container_pointed_at_the_local_gateway():
    agent = agent_body(
        work={"agent": {"image": "example.test/agent:1", "env": [{"name": "GOAL", "value": "x"}]}}
    )
    containers = _containers(_build(agent))
    env = _env(containers["agent"])
    assert env["OPENAI_BASE_URL"]["value"] == "http://127.0.0.1:8080/v1"
    assert env["ANTHROPIC_BASE_URL"]["value"] == "http://127.0.0.1:8080"
    assert env["ANTHROPIC_API_KEY"]["value"] == env["OPENAI_API_KEY"]["value"]
    assert env["GOAL"]["value"] == "x"
    assert {"name": "gateway", "containerPort": 8080, "protocol": "TCP"} in containers["runner"][
        "ports"
    ]


def test_the_runner_config_carries_the_agent_containers_digest_which_follows_its_spec():
    def digest(image: str, env: str) -> str | None:
        work = {"agent": {"image": image, "env": [{"name": "RUN", "value": env}]}}
        text = _build(agent_body(work=work))[("ConfigMap", "writer-config")]["data"]
        return RunnerConfig.from_yaml(text["runner.yaml"]).agent_digest

    first = digest("example.test/agent:1", "1")
    assert first is not None and first == digest("example.test/agent:1", "1")
    assert first not in (digest("example.test/agent:2", "1"), digest("example.test/agent:1", "2"))
    tasks = _build()[("ConfigMap", "writer-config")]["data"]["runner.yaml"]
    assert RunnerConfig.from_yaml(tasks).agent_digest is None


SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _gateway_pod() -> dict:
    agent = agent_body(work={"agent": {"image": "example.test/agent:1"}})
    return _deployment(_build(agent))["spec"]["template"]["spec"]


def test_only_the_runner_container_gets_the_service_account_token():
    # The agent's own container could otherwise patch its checkpoint and reset its spend.
    pod = _gateway_pod()
    assert pod["automountServiceAccountToken"] is False
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"runner", "onnx", "agent"}
    assert containers["runner"]["volumeMounts"][0] == {
        "name": "runner-token",
        "mountPath": SA_DIR,
        "readOnly": True,
    }
    assert "volumeMounts" not in containers["agent"]
    assert "volumeMounts" not in containers["onnx"]
    token = next(v for v in pod["volumes"] if v["name"] == "runner-token")
    # What the kubelet would have mounted itself: what the in-cluster loaders read.
    assert token["projected"]["sources"] == [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [
            {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
        ]}},
    ]  # fmt: skip


def test_the_runner_alone_keeps_its_spend_journal_on_a_volume_that_outlives_its_process():
    # The agent's container must not reach it: deleting lines would drop recorded spend.
    pod = _gateway_pod()
    containers = {c["name"]: c for c in pod["containers"]}
    assert {"name": "runner-state", "mountPath": "/var/lib/llmagents"} in containers["runner"][
        "volumeMounts"
    ]
    assert _env(containers["runner"])["LLMAGENTS_STATE_DIR"]["value"] == "/var/lib/llmagents"
    assert {"name": "runner-state", "emptyDir": {}} in pod["volumes"]
    assert all("volumeMounts" not in containers[name] for name in ("agent", "onnx"))


RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_every_container_meets_the_restricted_pod_security_standard():
    pod = _gateway_pod()
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in pod["containers"]:
        assert container["securityContext"] == RESTRICTED_CONTAINER, container["name"]


def _template_hash(built: dict) -> str:
    return _deployment(built)["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CONFIG_HASH]


def test_a_pool_change_rolls_the_deployment_but_scaling_does_not():
    base = _build()
    assert _template_hash(_build(pool=pool_body(strategy="round-robin"))) != _template_hash(base)
    scaled = _build(replicas=0)
    assert _template_hash(scaled) == _template_hash(base)
    assert (
        _deployment(scaled)["metadata"]["annotations"][ANNOTATION_HASH]
        != _deployment(base)["metadata"]["annotations"][ANNOTATION_HASH]
    )


def test_building_twice_gives_identical_manifests():
    assert _build() == _build()


def _named_rules() -> list[dict]:
    return [r for r in runner_rules("writer", "pool") if r["resources"] != ["events"]]


@pytest.mark.parametrize("rule", _named_rules(), ids=lambda r: r["resources"][0])
def test_every_runner_right_but_events_names_its_objects_and_none_deletes(rule):
    assert rule["resourceNames"]
    assert not {"delete", "deletecollection"} & set(rule["verbs"])
    assert "secrets" not in rule["resources"]


def test_the_runner_may_create_only_its_checkpoint_and_results_config_maps_and_events():
    creatable = [
        name
        for rule in _named_rules()
        if "create" in rule["verbs"]
        for name in rule["resourceNames"]
    ]
    assert sorted(creatable) == ["writer-checkpoint", *[f"writer-results-{i}" for i in range(4)]]
    (events,) = [r for r in runner_rules("writer", "pool") if r["resources"] == ["events"]]
    # events.k8s.io only (the API the runner writes): create and patch, and list to continue
    # its series after a restart; never get, update or delete.
    assert events == {
        "apiGroups": ["events.k8s.io"],
        "resources": ["events"],
        "verbs": ["create", "patch", "list"],
    }


def test_role_binding_binds_the_runner_service_account_to_its_role():
    binding = _build()[("RoleBinding", "writer-runner")]
    assert binding["roleRef"]["name"] == "writer-runner"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "writer-runner", "namespace": "team-a"}
    ]


def test_the_operator_holds_every_right_it_grants_runners():
    # RBAC refuses to let anyone grant rights it does not have itself.
    granted = {
        (group, resource, verb)
        for rule in operator_rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    missing = [
        (group, resource, verb)
        for rule in runner_rules("writer", "pool")
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if (group, resource, verb) not in granted
    ]
    assert missing == []


def test_metrics_service_is_headless_and_selects_the_runner_pod():
    built = _build()
    service = built[("Service", "writer-metrics")]["spec"]
    assert service["clusterIP"] == "None"
    assert service["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = _deployment(built)["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()


def test_runners_get_the_trace_endpoint_only_when_the_operator_has_one():
    import dataclasses

    def runner_env(settings: OperatorSettings) -> dict:
        manifests = children(AgentObject.from_body(agent_body()), PoolObject.from_body(pool_body()),
                             settings, replicas=1)  # fmt: skip
        built = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
        return _env(_containers(built)["runner"])

    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in runner_env(SETTINGS)
    traced = dataclasses.replace(SETTINGS, runner_otlp_endpoint="http://collector:4318")
    assert runner_env(traced)["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector:4318"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in runner_env(traced)  # the runner's default
    grpc = dataclasses.replace(traced, runner_otlp_endpoint="http://collector:4317",
                               runner_otlp_protocol="grpc")  # fmt: skip
    assert runner_env(grpc)["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
    assert "OTEL_SERVICE_NAME" not in runner_env(grpc)
    named = dataclasses.replace(traced, runner_otel_service_name="agents-prod",
                                runner_otel_resource_attributes="deployment.environment=prod")  # fmt: skip
    assert runner_env(named)["OTEL_SERVICE_NAME"]["value"] == "agents-prod"
    assert runner_env(named)["OTEL_RESOURCE_ATTRIBUTES"]["value"] == "deployment.environment=prod"


def test_a_ca_bundle_is_mounted_read_only_as_the_runner_s_ssl_cert_file():
    import dataclasses

    def built(settings: OperatorSettings) -> dict:
        manifests = children(AgentObject.from_body(agent_body()), PoolObject.from_body(pool_body()),
                             settings, replicas=1)  # fmt: skip
        return {(m["kind"], m["metadata"]["name"]): m for m in manifests}

    plain = built(SETTINGS)
    assert "SSL_CERT_FILE" not in _env(_containers(plain)["runner"])
    assert all(
        "configMap" not in v for v in _deployment(plain)["spec"]["template"]["spec"]["volumes"]
    )

    with_ca = built(dataclasses.replace(SETTINGS, runner_ca_bundle_config_map="corp-ca",
                                        runner_ca_bundle_key="bundle.pem"))  # fmt: skip
    runner = _containers(with_ca)["runner"]
    assert _env(runner)["SSL_CERT_FILE"]["value"] == "/etc/llmagents/ca/ca.crt"
    mount = next(m for m in runner["volumeMounts"] if m["mountPath"] == "/etc/llmagents/ca")
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in _deployment(with_ca)["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "bundle.pem", "path": "ca.crt"}],
    }
