"""Fixtures for tests on the real local control plane (see ``tooling.cluster``).

- ``cluster`` (session): a running control plane, started for this pytest process (one
  per xdist worker) and stopped at the end, or the one ``LLMAGENTS_TEST_KUBECONFIG``
  names. Without the Go toolchain (and no binaries built) the tests skip, except under
  ``CI=true`` where they fail: CI must never pass by skipping the cluster.
- ``kube_client`` (session): a ``kubernetes.client.ApiClient`` for the cluster.
- ``namespace``: a fresh namespace per test, deleted afterwards.
- ``kubectl``: runs kubectl against the cluster, in the test's namespace.
- ``process_kubelet``: a :class:`ProcessKubelet` running our image's pods of the test's
  namespace as local processes (fast restart back-off, short stop grace).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from llmagents.kube import KubeClient
from tooling import _proc
from tooling.cluster import (
    ClusterError,
    ClusterInfo,
    Kubectl,
    LocalCluster,
    default_state_root,
    find_bin_dir,
    kubectl_path,
)
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"cluster tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"no local control plane: {reason}")


def _sweep_stale_test_clusters() -> None:
    """Remove state (and processes) of test clusters whose pytest process is gone."""
    for d in default_state_root().glob("pytest-*"):
        try:
            owner = int(d.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not _proc.alive(owner):
            _proc.kill_recorded(d / "pids", grace=1.0)
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterInfo]:
    external = os.environ.get("LLMAGENTS_TEST_KUBECONFIG")
    if external:
        try:
            bins: Path | None = find_bin_dir(build=False)
        except ClusterError:
            bins = None
        yield ClusterInfo(Path(external), kubectl_path(bins))
        return
    # Building takes minutes (longer than a test's timeout): `make test` and
    # `make test-cluster` build first, so here the binaries must already be there.
    try:
        bins = find_bin_dir(build=False)
    except ClusterError as exc:
        if shutil.which("go") is None:
            _unavailable(f"the Go toolchain (go) is not installed, so {exc}")
        _unavailable(f"{exc} (run `make k8s-bins`)")
        raise
    _sweep_stale_test_clusters()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    local = LocalCluster(
        f"pytest-{worker}-{os.getpid()}",
        bin_dir=bins,
        ephemeral=True,
        die_with_parent=True,
    )
    local.start()
    try:
        yield ClusterInfo(local.kubeconfig, local.kubectl, local)
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kube_client(cluster: ClusterInfo) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
    return f"{slug[:40].rstrip('-')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube_client: client.ApiClient) -> Iterator[str]:
    api = client.CoreV1Api(kube_client)
    name = _namespace_name(request.node.name.removeprefix("test_"))
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are refused until the serviceaccount controller made the "default" account.
    eventually(
        lambda: (
            api.list_namespaced_service_account(name, field_selector="metadata.name=default").items
        ),
        timeout=30,
        every=0.05,
        what=f"the default service account in {name}",
    )
    yield name
    # The namespace controller finishes the deletion; nobody needs to wait for it.
    api.delete_namespace(name)


@pytest.fixture
async def kube(cluster: ClusterInfo) -> AsyncIterator[KubeClient]:
    """The project's own Kubernetes client (``llmagents.kube``) on the test cluster."""
    ours = await KubeClient.from_environment(kubeconfig=str(cluster.kubeconfig))
    yield ours
    await ours.aclose()


@pytest.fixture
def kubectl(cluster: ClusterInfo, namespace: str) -> Kubectl:
    return Kubectl(cluster.kubectl, cluster.kubeconfig, namespace)


@pytest.fixture
def process_kubelet(
    cluster: ClusterInfo, namespace: str, tmp_path: Path
) -> Iterator[ProcessKubelet]:
    kubelet = ProcessKubelet(
        cluster.kubeconfig,
        namespace=namespace,
        state_dir=tmp_path / "kubelet",
        backoff_initial=0.5,
        backoff_max=5.0,
        max_stop_grace=10.0,
    )
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
