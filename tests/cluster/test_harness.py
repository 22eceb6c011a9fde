"""The local control plane behaves like a real cluster: these prove the harness itself.

Each test checks one property other tests rely on: CRDs with a status subresource and
printer columns, Deployments that turn into running pods on a kwok node, garbage
collection, RBAC denial for a restricted service account, and the process kubelet
running (and stopping) our image's containers as local processes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import textwrap
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tooling import _proc
from tooling.cluster import ClusterInfo, Kubectl
from tooling.kubelet import ContainerStatus, ProcessKubelet
from tooling.polling import eventually

pytestmark = pytest.mark.cluster


def test_crd_with_status_subresource_shows_printer_columns_and_accepts_a_status_patch(
    kubectl: Kubectl,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    plural, group = f"gadgets{suffix}", "harness.llmagents.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": f"gadget{suffix}", "kind": f"Gadget{suffix}"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    kubectl.apply(json.dumps(crd))
    try:
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.{group}", "--timeout=60s")
        kubectl.apply(
            json.dumps(
                {
                    "apiVersion": f"{group}/v1",
                    "kind": f"Gadget{suffix}",
                    "metadata": {"name": "one"},
                    "spec": {"size": 3},
                }
            )
        )
        kubectl(
            "patch", f"{plural}/one", "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "Ready"}}',
        )  # fmt: skip
        # A status in a main-resource patch is ignored: status belongs to the subresource.
        kubectl("patch", f"{plural}/one", "--type=merge", "-p", '{"status": {"phase": "Nope"}}')

        table = kubectl("get", plural).stdout.splitlines()
        assert table[0].split() == ["NAME", "SIZE", "PHASE"]
        assert table[1].split()[:3] == ["one", "3", "Ready"]
    finally:
        kubectl("delete", "crd", f"{plural}.{group}", "--wait=false")


def test_deployment_becomes_a_replicaset_and_a_running_pod_on_a_kwok_node(
    kubectl: Kubectl, kube_client: client.ApiClient, namespace: str
) -> None:
    kubectl("create", "deployment", "web", "--image=registry.invalid/nothing:1", "--replicas=1")
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)

    def running_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    pod = eventually(running_pod, what="a Running pod of the Deployment")
    replicasets = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
    assert len(replicasets) == 1
    assert replicasets[0].metadata.owner_references[0].kind == "Deployment"
    assert pod.metadata.owner_references[0].name == replicasets[0].metadata.name
    assert pod.spec.node_name == "kwok-node-0"
    assert ipaddress.ip_address(pod.status.pod_ip).is_loopback
    kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=60s")


def test_deleting_an_owner_garbage_collects_its_dependents(
    kube_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref])),
    )

    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
        return "dependent" not in names

    eventually(dependent_gone, what="the garbage collector to delete the dependent")


def test_restricted_service_account_is_denied_what_its_role_does_not_grant(
    kubectl: Kubectl, namespace: str, cluster: ClusterInfo, tmp_path: Path
) -> None:
    kubectl("create", "serviceaccount", "reader")
    kubectl("create", "role", "read-configmaps", "--verb=get,list", "--resource=configmaps")
    kubectl(
        "create", "rolebinding", "reader", "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader",
    )  # fmt: skip
    who = f"--as=system:serviceaccount:{namespace}:reader"

    def can(verb: str, resource: str) -> str:
        return kubectl("auth", "can-i", verb, resource, who, check=False).stdout.strip()

    assert can("list", "configmaps") == "yes"
    assert can("list", "secrets") == "no"
    assert can("create", "deployments") == "no"
    # Not only the authorizer's answer: a real token of that account is refused by the server.
    token = kubectl("create", "token", "reader").stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}  # no client certificate: only the token
    as_reader = tmp_path / "reader.kubeconfig"
    as_reader.write_text(json.dumps(config))
    denied = kubectl("get", "secrets", f"--kubeconfig={as_reader}", check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert kubectl("get", "configmaps", f"--kubeconfig={as_reader}").returncode == 0


_POD_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    print("GREETING=" + os.environ["GREETING"])
    print("PASSWORD=" + os.environ["PASSWORD"])
    print("POD_NAME=" + os.environ["POD_NAME"])
    print("POD_IP=" + os.environ["POD_IP"])
    print("PEER=" + os.environ["PEER"])
    print("FILE=" + open(os.environ["SETTINGS"]).read())
    print("KUBECONFIG=" + os.environ["KUBECONFIG"], flush=True)
    signal.pause()
    """
)


def _pod(name: str, containers: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": containers,
                "volumes": [{"name": "settings", "configMap": {"name": "settings"}}],
            },
        }
    )


def test_process_kubelet_starts_a_process_for_a_pod_and_stops_it_when_the_pod_is_deleted(
    kubectl: Kubectl, process_kubelet: ProcessKubelet, namespace: str, cluster: ClusterInfo
) -> None:
    kubectl("create", "configmap", "settings", "--from-literal=greeting=hello",
            "--from-literal=settings.yaml=mode: test")  # fmt: skip
    kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    main = {
        "name": "main",
        "image": "ghcr.io/llmagents/llmagents:test",
        "command": ["python3", "-c", _POD_SCRIPT],
        "ports": [{"containerPort": 8081}],
        "env": [
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "PEER", "value": "http://localhost:8081/v1"},
            {"name": "SETTINGS", "value": "/etc/llmagents/settings.yaml"},
        ],
        "volumeMounts": [{"name": "settings", "mountPath": "/etc/llmagents"}],
    }  # fmt: skip
    other = {"name": "other", "image": "registry.invalid/not-ours:1"}
    kubectl.apply(_pod("worker", [main, other]))

    status = process_kubelet.wait_for(lambda s: s.container == "main" and s.running)
    assert status.pid is not None and _proc.alive(status.pid)
    assert [s.container for s in process_kubelet.statuses()] == ["main"]  # "other" is kwok's

    def output() -> dict[str, str] | None:
        printed = [
            line.split("=", 1)
            for line in status.log_path.read_text().splitlines()
            if re.match(r"[A-Z_]+=", line)
        ]
        return dict(printed) if any(k == "KUBECONFIG" for k, _ in printed) else None

    lines = eventually(output, what="the pod's output")
    pod = kubectl.json("get", "pod", "worker")
    assert lines["GREETING"] == "hello"
    assert lines["PASSWORD"] == "s3cret"
    assert lines["POD_NAME"] == "worker"
    assert lines["POD_IP"] == pod["status"]["podIP"]
    assert ipaddress.ip_address(lines["POD_IP"]).is_loopback
    assert lines["PEER"] == f"http://{lines['POD_IP']}:8081/v1"
    assert lines["FILE"] == "mode: test"
    # The pod's kubeconfig carries a token of its service account.
    whoami = kubectl("auth", "whoami", f"--kubeconfig={lines['KUBECONFIG']}", "-o", "json")
    username = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{namespace}:default"

    kubectl("delete", "pod", "worker", "--wait=false")
    eventually(lambda: not _proc.alive(status.pid), timeout=30, what="the process to stop")


def test_process_kubelet_restarts_a_crashing_container_with_back_off(
    kubectl: Kubectl, process_kubelet: ProcessKubelet
) -> None:
    crasher = {
        "name": "crasher",
        "image": "ghcr.io/llmagents/llmagents:test",
        "command": ["python3", "-c", "print('boom'); raise SystemExit(3)"],
    }
    kubectl.apply(
        json.dumps(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crasher"},
             "spec": {"containers": [crasher]}}
        )
    )  # fmt: skip

    def restarted(s: ContainerStatus) -> bool:
        return s.restart_count >= 2

    status = process_kubelet.wait_for(restarted, timeout=30)
    assert status.exit_codes[:2] == [3, 3]
    assert status.log_path.read_text().count("boom") >= 2


def test_pods_listen_on_the_same_port_each_at_its_own_loopback_address(
    kubectl: Kubectl, process_kubelet: ProcessKubelet
) -> None:
    server = {
        "name": "web",
        "image": "ghcr.io/llmagents/llmagents:test",
        "command": ["python3", "-m", "http.server", "8080", "--bind", "$(LLMAGENTS_POD_IP)"],
        "ports": [{"containerPort": 8080}],
    }
    for name in ("first", "second"):
        kubectl.apply(
            json.dumps(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                 "spec": {"containers": [server]}}
            )
        )  # fmt: skip

    def pod_ips() -> set[str] | None:
        found = {kubectl.json("get", "pod", n)["status"].get("podIP") for n in ("first", "second")}
        return None if None in found else found

    ips = eventually(pod_ips, what="both pods to get their IPs")
    assert len(ips) == 2 and all(ipaddress.ip_address(ip).is_loopback for ip in ips)

    def answers(ip: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{ip}:8080/", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    for ip in ips:
        eventually(lambda ip=ip: answers(ip), timeout=30, what=f"the server at {ip}:8080")
    assert all(s.running and s.restart_count == 0 for s in process_kubelet.statuses())
