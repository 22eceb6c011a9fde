"""Pure builders: an LLMAgent and its ProviderPool in, the manifests that run it out.

Nothing here talks to the API server or reads the clock, so every manifest can be tested
by value. ``children`` returns everything one agent owns, each manifest stamped with the
hash of its own content (``ANNOTATION_HASH``): the reconciler writes a child only when that
hash differs from what it applied last, which is what keeps a converged operator silent.
"""

from __future__ import annotations

from typing import Any

from llmagents.api.pool import ProviderType
from llmagents.api.runner_config import (
    CONFIG_KEY,
    ENV_AGENT,
    ENV_CONFIG_MAP,
    ENV_GATEWAY_PORT,
    ENV_METRICS_PORT,
    ENV_NAMESPACE,
    ENV_ONNX_MODEL_DIR,
    ENV_ONNX_PORT,
    ENV_ONNX_URL,
    ENV_POD_NAME,
    ENV_STATE_DIR,
    AgentIdentity,
    RunnerConfig,
    RunnerPorts,
    WorkMode,
    api_key_env,
    checkpoint_config_map_name,
    config_map_name,
)
from llmagents.operator.meta import content_hash, labels, metadata, selector
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.rbac import role, role_binding, service_account, service_account_name
from llmagents.operator.settings import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_HASH,
    CA_BUNDLE_MOUNT,
    MODEL_MOUNT,
    OperatorSettings,
)

GATEWAY_API_KEY = "llmagents-gateway"
"""What the agent container sends as its OpenAI key; the gateway ignores it."""


def has_onnx(pool: PoolObject) -> bool:
    return pool.spec is not None and any(p.type is ProviderType.ONNX for p in pool.spec.providers)


def runner_config(agent: AgentObject, pool: PoolObject, settings: OperatorSettings) -> RunnerConfig:
    """The runner's configuration: the agent resolved against its pool; never a secret."""
    assert agent.spec is not None and pool.spec is not None
    spec = agent.spec
    pool_spec = pool.spec
    if spec.strategy is not None:
        pool_spec = pool_spec.model_copy(update={"strategy": spec.strategy})
    tasks = spec.work.tasks
    return RunnerConfig(
        agent=AgentIdentity(name=agent.name, namespace=agent.namespace, uid=agent.uid),
        pool_name=pool.name,
        pool=pool_spec,
        mode=WorkMode.TASKS if tasks is not None else WorkMode.GATEWAY,
        tasks=tasks,
        agent_digest=spec.work.agent_digest(),
        budget=spec.budget,
        max_runtime=spec.max_runtime,
        checkpoint_interval=spec.checkpoint_interval,
        checkpoint_config_map=checkpoint_config_map_name(agent.name),
        ports=RunnerPorts(
            metrics=settings.metrics_port,
            gateway=settings.gateway_port,
            onnx=settings.onnx_port,
        ),
        onnx_url=_onnx_url(settings) if has_onnx(pool) else None,
        api_key_env={
            p.name: api_key_env(p.name) for p in pool_spec.providers if p.secret_ref is not None
        },
    )


def _onnx_url(settings: OperatorSettings) -> str:
    return f"http://127.0.0.1:{settings.onnx_port}"


def config_map(agent: AgentObject, config: RunnerConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(agent, config_map_name(agent.name)),
        "data": {CONFIG_KEY: config.render()},
    }


def metrics_service(agent: AgentObject, settings: OperatorSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(agent, f"{agent.name}-metrics"),
        "spec": {
            # Headless: Prometheus scrapes the pod's endpoint; a cluster IP would only cost an
            # allocation per agent.
            "clusterIP": "None",
            "selector": selector(agent),
            "ports": [
                {
                    "name": "metrics",
                    "port": settings.metrics_port,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


_RUNNER_PROBES = {
    # The runner serves both on its metrics port, which listens on every pod address.
    "livenessProbe": {
        "httpGet": {"path": "/healthz", "port": "metrics"},
        "periodSeconds": 20,
        "failureThreshold": 3,
    },
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 10},
}


# The restricted Pod Security Standard: the pod part (non-root, the runtime's seccomp
# profile) holds for every container, the agent's own included; each container adds the rest.
_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

TOKEN_VOLUME = "runner-token"
STATE_VOLUME = "runner-state"
CA_BUNDLE_VOLUME = "ca-bundle"
STATE_DIR = "/var/lib/llmagents"
"""The runner's emptyDir: it outlives the runner's process (a SIGKILL, the OOM killer, a
liveness restart), so the spend journal on it carries the spend of calls answered since the
last checkpoint into the restarted runner (docs/exactly-once.md). It goes with the pod,
whose deletion sends SIGTERM first: the runner then writes a final checkpoint."""
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where in-cluster client configuration looks for the token, CA and namespace."""
TOKEN_SECONDS = 3607
"""The kubelet's own choice for the token it mounts: refreshed after 80% of an hour."""


def _token_volume() -> dict[str, Any]:
    """What the kubelet would mount into every container, projected for the runner alone.

    The pod opts out of the automatic mount (``automountServiceAccountToken: false``): the
    agent's own container must not hold a token that may patch the agent's status and
    checkpoint, which would let it reset its own spend.
    """
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]
        },
    }  # fmt: skip


def _resources(value: Any, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """The agent's own resources, else the operator's default for that container."""
    if value is not None:
        return {"resources": value.to_wire()}
    return {"resources": default} if default else {}


def runner_container(
    agent: AgentObject, pool: PoolObject, config: RunnerConfig, settings: OperatorSettings
) -> dict[str, Any]:
    assert agent.spec is not None and pool.spec is not None
    env = [
        _env(ENV_AGENT, agent.name),
        _field_env(ENV_NAMESPACE, "metadata.namespace"),
        _field_env(ENV_POD_NAME, "metadata.name"),
        _env(ENV_CONFIG_MAP, config_map_name(agent.name)),
        _env(ENV_METRICS_PORT, str(settings.metrics_port)),
        _env(ENV_GATEWAY_PORT, str(settings.gateway_port)),
        _env(ENV_STATE_DIR, STATE_DIR),
    ]
    if config.onnx_url is not None:
        env.append(_env(ENV_ONNX_URL, config.onnx_url))
    if settings.runner_otlp_endpoint:
        # Traces (runner/tracing.py): on only where an endpoint is configured.
        env.append(_env("OTEL_EXPORTER_OTLP_ENDPOINT", settings.runner_otlp_endpoint))
        for name, value in (
            ("OTEL_EXPORTER_OTLP_PROTOCOL", settings.runner_otlp_protocol),
            ("OTEL_SERVICE_NAME", settings.runner_otel_service_name),
            ("OTEL_RESOURCE_ATTRIBUTES", settings.runner_otel_resource_attributes),
        ):
            if value:
                env.append(_env(name, value))
    mounts = [
        {"name": TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
        {"name": STATE_VOLUME, "mountPath": STATE_DIR},
    ]
    if settings.runner_ca_bundle_config_map:
        # Added to certifi's authorities by the runner (providers/egress.py).
        env.append(_env("SSL_CERT_FILE", f"{CA_BUNDLE_MOUNT}/ca.crt"))
        mounts.append({"name": CA_BUNDLE_VOLUME, "mountPath": CA_BUNDLE_MOUNT, "readOnly": True})
    for provider in pool.spec.providers:
        if provider.secret_ref is not None:
            env.append(
                {
                    "name": api_key_env(provider.name),
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": provider.secret_ref.name,
                            "key": provider.secret_ref.key,
                        }
                    },
                }
            )
    ports = [{"name": "metrics", "containerPort": settings.metrics_port, "protocol": "TCP"}]
    if config.mode is WorkMode.GATEWAY:
        ports.append({"name": "gateway", "containerPort": settings.gateway_port, "protocol": "TCP"})
    return {
        "name": "runner",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["runner"],
        "env": env,
        "ports": ports,
        **_RUNNER_PROBES,
        **_resources(agent.spec.resources, settings.runner_resources),
        "securityContext": _SECURITY,
        "volumeMounts": mounts,
    }


def onnx_container(agent: AgentObject, settings: OperatorSettings) -> dict[str, Any]:
    assert agent.spec is not None
    sidecar = agent.spec.onnx
    env = [_env(ENV_ONNX_PORT, str(settings.onnx_port))]
    mounts = []
    if sidecar is not None and sidecar.model_volume is not None:
        sub = sidecar.model_volume.sub_path
        env.append(_env(ENV_ONNX_MODEL_DIR, f"{MODEL_MOUNT}/{sub}" if sub else MODEL_MOUNT))
        mounts.append({"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True})
    container: dict[str, Any] = {
        "name": "onnx",
        "image": (sidecar.image if sidecar and sidecar.image else settings.image),
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["onnx-server"],
        "env": env,
        # No probes: the sidecar listens on the pod's loopback only (the local model is for
        # this pod's runner), where the kubelet's probes cannot reach; the runner's breaker
        # notices a dead sidecar, and a crashed one restarts like any container.
        "ports": [{"name": "onnx", "containerPort": settings.onnx_port, "protocol": "TCP"}],
        **_resources(sidecar.resources if sidecar else None, settings.onnx_resources),
        "securityContext": _SECURITY,
    }
    if mounts:
        container["volumeMounts"] = mounts
    return container


def agent_container(agent: AgentObject, settings: OperatorSettings) -> dict[str, Any]:
    """The user's agent, pointed at the runner's gateway on the pod's loopback."""
    assert agent.spec is not None and agent.spec.work.agent is not None
    spec = agent.spec.work.agent
    root = f"http://127.0.0.1:{settings.gateway_port}"
    base = f"{root}/v1"
    env = [
        _env("OPENAI_BASE_URL", base),
        _env("OPENAI_API_BASE", base),
        _env("OPENAI_API_KEY", GATEWAY_API_KEY),
        # Anthropic's SDKs add /v1 to their base URL themselves.
        _env("ANTHROPIC_BASE_URL", root),
        _env("ANTHROPIC_API_KEY", GATEWAY_API_KEY),
        _env("LLMAGENTS_GATEWAY_URL", base),
    ]
    ours = {e["name"] for e in env}
    env += [_env(e.name, e.value) for e in spec.env or [] if e.name not in ours]
    container: dict[str, Any] = {"name": "agent", "image": spec.image, "env": env}
    if spec.command:
        container["command"] = spec.command
    if spec.args:
        container["args"] = spec.args
    return {**container, **_resources(spec.resources), "securityContext": _SECURITY}


def _ca_bundle_volume(settings: OperatorSettings) -> list[dict[str, Any]]:
    """The CA bundle ConfigMap's one key as ``ca.crt``; not optional, so that a missing
    ConfigMap or key holds the pod in ContainerCreating with an event naming it rather than
    starting a runner that trusts less than asked."""
    if not settings.runner_ca_bundle_config_map:
        return []
    source = {"name": settings.runner_ca_bundle_config_map,
              "items": [{"key": settings.runner_ca_bundle_key, "path": "ca.crt"}]}  # fmt: skip
    return [{"name": CA_BUNDLE_VOLUME, "configMap": source}]


def _model_volume(agent: AgentObject) -> list[dict[str, Any]]:
    sidecar = agent.spec.onnx if agent.spec else None
    if sidecar is None or sidecar.model_volume is None:
        return []
    volume = sidecar.model_volume
    if volume.claim_name:
        source = {"persistentVolumeClaim": {"claimName": volume.claim_name, "readOnly": True}}
    else:
        source = {"hostPath": {"path": volume.host_path, "type": "Directory"}}
    return [{"name": "model", **source}]


def deployment(
    agent: AgentObject,
    pool: PoolObject,
    config: RunnerConfig,
    settings: OperatorSettings,
    *,
    replicas: int,
) -> dict[str, Any]:
    """One replica, Recreate: two runners of one agent must never overlap."""
    assert agent.spec is not None
    containers = [runner_container(agent, pool, config, settings)]
    if has_onnx(pool):
        containers.append(onnx_container(agent, settings))
    if config.mode is WorkMode.GATEWAY:
        containers.append(agent_container(agent, settings))
    pod_spec: dict[str, Any] = {
        "serviceAccountName": service_account_name(agent.name),
        "automountServiceAccountToken": False,
        "securityContext": _POD_SECURITY,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "containers": containers,
    }
    pod_spec["volumes"] = [
        _token_volume(),
        {"name": STATE_VOLUME, "emptyDir": {}},
        *(_model_volume(agent) if has_onnx(pool) else []),
        *_ca_bundle_volume(settings),
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(agent, agent.name),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(agent)},
            "template": {
                "metadata": {
                    "labels": labels(agent),
                    "annotations": {ANNOTATION_CONFIG_HASH: content_hash(config.to_wire())},
                },
                "spec": pod_spec,
            },
        },
    }


def children(
    agent: AgentObject, pool: PoolObject, settings: OperatorSettings, *, replicas: int
) -> list[dict[str, Any]]:
    """Everything the agent owns, hash-stamped."""
    config = runner_config(agent, pool, settings)
    manifests = [
        service_account(agent),
        role(agent),
        role_binding(agent),
        config_map(agent, config),
        metrics_service(agent, settings),
        deployment(agent, pool, config, settings, replicas=replicas),
    ]
    for manifest in manifests:
        annotations = manifest["metadata"].setdefault("annotations", {})
        annotations[ANNOTATION_HASH] = content_hash(manifest)
    return manifests
