"""Fixtures of the real-node end-to-end run (``make e2e``; see docs/e2e.md).

Session-scoped, in the order they build on each other: ``cluster`` (the local control
plane without kwok), ``node`` (containerd + kubelet joined to it, the images loaded),
``fakes`` (fake Anthropic and OpenAI servers on the node's bridge address, where pods
reach them), ``release`` (``helm install`` of the chart into a namespace that enforces the
restricted Pod Security Standard). The tests run only under hack/e2e.sh, which gives them
namespaces of their own; anywhere else (``make test``) they are skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_e2e import CHART, OPERATOR_NS, RELEASE, Fakes, Kube

from tooling import _proc
from tooling.cluster import LocalCluster, default_state_root
from tooling.node import NETNS_ENV, NodeUnavailable, RealNode, missing_prerequisites

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(NETNS_ENV) == "1":
        return
    skip = pytest.mark.skip(reason="real-node end-to-end tests: run by `make e2e` (hack/e2e.sh)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(E2E_DIR):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image() -> str:
    return os.environ["LLMAGENTS_E2E_IMAGE"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    state = default_state_root().parent / "e2e"
    for stale in state.glob("e2e-*"):  # of a killed run (hack/e2e.sh ended its processes)
        if not _proc.alive(int(stale.name.removeprefix("e2e-"))):
            shutil.rmtree(stale, ignore_errors=True)
    local = LocalCluster(
        f"e2e-{os.getpid()}", state_root=state, pki_dir=state / "pki", ephemeral=True,
        die_with_parent=True, real_node=True,
    )  # fmt: skip
    local.start(timeout=180)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def node(cluster: LocalCluster, image: str) -> Iterator[RealNode]:
    if missing := missing_prerequisites():
        pytest.fail(f"a real node cannot run here: needs {', '.join(missing)}", pytrace=False)
    real = RealNode(cluster)
    try:
        real.start([image, os.environ["LLMAGENTS_E2E_AGENT_IMAGE"]], timeout=600)
    except NodeUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield real
    finally:
        real.stop()


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster, node: RealNode) -> Kube:
    return Kube(cluster.kubectl, cluster.kubeconfig, cluster.bin_dir / "helm")


@pytest.fixture(scope="session")
def fakes(node: RealNode) -> Iterator[Fakes]:
    started = Fakes.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def release(kube: Kube, image: str) -> str:
    """The chart installed with the image built by hack/e2e.sh; its operator Ready."""
    kube.restricted_namespace(OPERATOR_NS)
    repository, tag = image.rsplit(":", 1)
    result = kube.helm(
        "install", RELEASE, str(CHART), "--namespace", OPERATOR_NS,
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--set", "operator.logFormat=plain",
        "--wait", "--timeout", "300s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + kube.diagnostics(OPERATOR_NS)
    return RELEASE


@pytest.fixture(autouse=True)
def _diagnostics_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "kube" in request.fixturenames:
        kube: Kube = request.getfixturevalue("kube")
        print(kube.diagnostics(None))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
