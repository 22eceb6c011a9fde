"""The process kubelet's translation of a pod spec into a local process, without a cluster.

These pin the contract programs rely on when run by the process kubelet: Kubernetes'
command and ``$(VAR)`` rules, environment sources, the loopback pod address, and mount
paths under ``LLMAGENTS_ROOT``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tooling._pod import NotReady, Translation, expand, plan_pod


class FakeSource:
    """ConfigMaps and Secrets held in memory; tokens are fixed strings."""

    def __init__(self) -> None:
        self.config_maps: dict[str, dict[str, bytes]] = {
            "settings": {"greeting": b"hello", "config.yaml": b"mode: test"}
        }
        self.secrets: dict[str, dict[str, bytes]] = {"creds": {"api-key": b"k-123"}}

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.config_maps.get(name)

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get(name)

    def token(self, namespace: str, service_account: str, **_: Any) -> str:
        return f"token-of-{service_account}"


TRANSLATION = Translation(
    matches_image=lambda image: "llmagents" in image,
    image_entrypoint=["llmagents"],
    image_cmd=[],
    entrypoints={"llmagents": ["/venv/bin/llmagents"]},
    server="https://127.0.0.1:6443",
    ca_pem=b"-----BEGIN CERTIFICATE-----\n",
)


def _pod(
    *containers: dict[str, Any], volumes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "agent-0", "namespace": "team", "uid": "0123456789abcdef"},
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": list(containers),
            "volumes": volumes or [],
        },
    }


def _runner(**extra: Any) -> dict[str, Any]:
    return {"name": "runner", "image": "ghcr.io/llmagents/llmagents:dev", **extra}


def test_dollar_references_expand_and_double_dollar_escapes() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(MISSING)", {"A": "1", "B": "2"}) == "1-2-$(A)-$(MISSING)"


def test_image_entrypoint_maps_to_the_local_console_script(tmp_path: Path) -> None:
    plan = plan_pod(
        _pod(_runner(args=["runner", "--name", "$(HOSTNAME)"])),
        source=FakeSource(), pod_dir=tmp_path, pod_ip="127.100.0.7", t=TRANSLATION,
    )  # fmt: skip
    assert plan.containers[0].argv == ["/venv/bin/llmagents", "runner", "--name", "agent-0"]


def test_containers_of_other_images_are_left_to_kwok(tmp_path: Path) -> None:
    other = {"name": "proxy", "image": "envoyproxy/envoy:v1"}
    plan = plan_pod(
        _pod(_runner(args=["runner"]), other),
        source=FakeSource(), pod_dir=tmp_path, pod_ip="127.100.0.7", t=TRANSLATION,
    )  # fmt: skip
    assert [c.name for c in plan.containers] == ["runner"]
    assert plan.skipped == ["proxy"]


def test_environment_comes_from_configmaps_secrets_and_the_downward_api(tmp_path: Path) -> None:
    runner = _runner(
        args=["runner"],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        env=[
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "api-key"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        ],
    )  # fmt: skip
    env = (
        plan_pod(
            _pod(runner), source=FakeSource(), pod_dir=tmp_path, pod_ip="127.100.0.7", t=TRANSLATION
        )
        .containers[0]
        .env
    )
    assert env["CFG_greeting"] == "hello"
    assert env["KEY"] == "k-123"
    assert env["NS"] == "team"
    assert env["IP"] == env["LLMAGENTS_POD_IP"] == "127.100.0.7"
    assert "OPT" not in env
    assert "KUBERNETES_SERVICE_HOST" not in env


def test_a_missing_secret_holds_the_pod_back(tmp_path: Path) -> None:
    runner = _runner(
        args=["runner"],
        env=[{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}],
    )
    with pytest.raises(NotReady):
        plan_pod(_pod(runner), source=FakeSource(), pod_dir=tmp_path, pod_ip="127.1.0.1",
                 t=TRANSLATION)  # fmt: skip


def test_localhost_urls_to_declared_ports_point_at_the_pod_address(tmp_path: Path) -> None:
    runner = _runner(
        args=["runner", "--sidecar=http://localhost:8081/v1"],
        ports=[{"containerPort": 8080}],
        env=[{"name": "FAKE_PROVIDER", "value": "http://127.0.0.1:39999"}],
    )
    sidecar = {"name": "onnx", "image": "ghcr.io/llmagents/llmagents:dev",
               "args": ["onnx-server"], "ports": [{"containerPort": 8081}]}  # fmt: skip
    plan = plan_pod(_pod(runner, sidecar), source=FakeSource(), pod_dir=tmp_path,
                    pod_ip="127.100.0.7", t=TRANSLATION)  # fmt: skip
    assert plan.containers[0].argv[-1] == "--sidecar=http://127.100.0.7:8081/v1"
    # A server outside the pod (a test's fake provider on the host) is left as written.
    assert plan.containers[0].env["FAKE_PROVIDER"] == "http://127.0.0.1:39999"


def test_mounted_files_appear_under_llmagents_root(tmp_path: Path) -> None:
    runner = _runner(
        args=["runner", "--config=/etc/llmagents/config.yaml"],
        volumeMounts=[{"name": "settings", "mountPath": "/etc/llmagents"}],
    )
    volumes = [{"name": "settings", "configMap": {"name": "settings"}}]
    plan = plan_pod(_pod(runner, volumes=volumes), source=FakeSource(), pod_dir=tmp_path,
                    pod_ip="127.100.0.7", t=TRANSLATION)  # fmt: skip
    container = plan.containers[0]
    root = Path(container.env["LLMAGENTS_ROOT"])
    assert (root / "etc/llmagents/config.yaml").read_text() == "mode: test"
    assert container.argv[-1] == f"--config={root}/etc/llmagents/config.yaml"


def test_the_service_account_arrives_as_a_kubeconfig(tmp_path: Path) -> None:
    pod = _pod(_runner(args=["runner"]))
    pod["spec"]["serviceAccountName"] = "agent"
    env = plan_pod(pod, source=FakeSource(), pod_dir=tmp_path, pod_ip="127.1.0.1",
                   t=TRANSLATION).containers[0].env  # fmt: skip
    kubeconfig = Path(env["KUBECONFIG"]).read_text()
    assert "token-of-agent" in kubeconfig
    assert "https://127.0.0.1:6443" in kubeconfig


def test_a_pod_that_opts_out_of_a_token_gets_no_kubeconfig(tmp_path: Path) -> None:
    pod = _pod(_runner(args=["runner"]))
    pod["spec"]["automountServiceAccountToken"] = False
    env = plan_pod(pod, source=FakeSource(), pod_dir=tmp_path, pod_ip="127.1.0.1",
                   t=TRANSLATION).containers[0].env  # fmt: skip
    assert "KUBECONFIG" not in env


def test_kubelet_paths_are_not_rewritten_under_a_mount_that_covers_them(tmp_path: Path) -> None:
    # The chart mounts an emptyDir at /tmp while the kubelet's own state (kubeconfig, pod
    # root) may live under the host's /tmp: those host paths must reach the process as is.
    runner = _runner(
        args=["runner"],
        env=[{"name": "SCRATCH", "value": "/tmp/work"}],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    volumes = [{"name": "tmp", "emptyDir": {}}]
    plan = plan_pod(_pod(runner, volumes=volumes), source=FakeSource(), pod_dir=tmp_path,
                    pod_ip="127.100.0.7", t=TRANSLATION)  # fmt: skip
    env = plan.containers[0].env
    assert str(tmp_path).startswith("/tmp")
    assert Path(env["KUBECONFIG"]).is_file()
    assert env["SCRATCH"] == f"{env['LLMAGENTS_ROOT']}/tmp/work"


def test_the_local_entrypoint_is_not_rewritten_under_a_mount_that_covers_it(
    tmp_path: Path,
) -> None:
    # A checkout under /tmp runs its console script from /tmp/...; a pod mounting /tmp must
    # still start that script, while its own /tmp arguments move under LLMAGENTS_ROOT.
    translation = dataclasses.replace(
        TRANSLATION, entrypoints={"llmagents": ["/tmp/checkout/.venv/bin/llmagents"]}
    )
    runner = _runner(args=["runner", "--scratch=/tmp/work"],
                     volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}])  # fmt: skip
    plan = plan_pod(_pod(runner, volumes=[{"name": "tmp", "emptyDir": {}}]),
                    source=FakeSource(), pod_dir=tmp_path, pod_ip="127.100.0.7",
                    t=translation)  # fmt: skip
    container = plan.containers[0]
    assert container.argv[0] == "/tmp/checkout/.venv/bin/llmagents"
    assert container.argv[-1] == f"--scratch={container.env['LLMAGENTS_ROOT']}/tmp/work"


def _operator_built_pod() -> dict[str, Any]:
    """The pod of a gateway-mode agent, exactly as the operator builds it."""
    from llmagents.operator.builders import children
    from llmagents.operator.objects import AgentObject, PoolObject
    from llmagents.operator.settings import OperatorSettings

    meta = {"namespace": "team-a", "uid": "uid", "generation": 1,
            "creationTimestamp": "2030-01-01T00:00:00Z"}  # fmt: skip
    agent = AgentObject.from_body({
        "apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
        "metadata": {"name": "writer", **meta},
        "spec": {"poolRef": {"name": "pool"},
                 "work": {"agent": {"image": "example.test/llmagents-agent:1"}}},
    })  # fmt: skip
    pool = PoolObject.from_body({
        "apiVersion": "llmagents.dev/v1alpha1", "kind": "ProviderPool",
        "metadata": {"name": "pool", **meta},
        "spec": {"providers": [{"name": "local", "type": "onnx", "model": "smollm2"}]},
    })  # fmt: skip
    settings = OperatorSettings(image="ghcr.io/llmagents/llmagents:dev")
    manifests = children(agent, pool, settings, replicas=1)
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    return {
        "metadata": {"name": "writer-0", "namespace": "team-a", "uid": "0123456789abcdef"},
        "spec": {"nodeName": "kwok-node-0", **deployment["spec"]["template"]["spec"]},
    }


def test_only_the_container_that_mounts_the_projected_token_gets_credentials(
    tmp_path: Path,
) -> None:
    from kubernetes import client
    from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME, InClusterConfigLoader

    source = FakeSource()
    source.config_maps["kube-root-ca.crt"] = {"ca.crt": TRANSLATION.ca_pem}
    plan = plan_pod(_operator_built_pod(), source=source, pod_dir=tmp_path,
                    pod_ip="127.1.0.2", t=TRANSLATION)  # fmt: skip
    containers = {c.name: c for c in plan.containers}
    assert set(containers) == {"runner", "onnx", "agent"}
    assert "KUBECONFIG" not in containers["agent"].env
    assert "KUBECONFIG" not in containers["onnx"].env
    for name in ("agent", "onnx"):
        root = Path(containers[name].env["LLMAGENTS_ROOT"])
        assert not (root / SERVICE_TOKEN_FILENAME[1:]).exists()
    kubeconfig = Path(containers["runner"].env["KUBECONFIG"]).read_text()
    assert "token-of-writer-runner" not in kubeconfig  # a tokenFile, not a copy
    # The runner's files are where in-cluster configuration reads them in a real pod.
    mounted = Path(containers["runner"].env["LLMAGENTS_ROOT"]) / SERVICE_TOKEN_FILENAME[1:]
    configuration = client.Configuration()
    InClusterConfigLoader(
        token_filename=str(mounted), cert_filename=str(mounted.with_name("ca.crt")),
        environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    ).load_and_set(configuration)  # fmt: skip
    assert configuration.auth_settings()["BearerToken"]["value"].endswith(" token-of-writer-runner")
    assert mounted.with_name("namespace").read_text() == "team-a"
