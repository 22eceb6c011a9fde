"""Fixtures of the real-node end-to-end run (``make e2e``; see docs/e2e.md).

Session-scoped, each built on demand by whichever test first needs it, so that any one
test runs alone (``E2E_TESTS=tests/e2e/test_real_node.py::<test> make e2e``) and the
whole run builds each only once: ``cluster`` (the local control plane without kwok),
``node`` (containerd + kubelet joined to it, the images loaded), ``fakes`` (fake Anthropic
and OpenAI servers on the node's bridge address, where pods reach them), ``chart`` (the
chart as ``helm install`` left it: the default image for everything, in a namespace that
enforces the restricted Pod Security Standard). ``release`` is per test: it installs the
chart again when a test before it uninstalled it. The tests run only under hack/e2e.sh,
which gives them namespaces of their own; anywhere else (``make test``) they are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from node_e2e import (
    AGENTS_NS,
    OPERATOR_NS,
    RELEASE,
    Chart,
    Fakes,
    GatewayRun,
    Kube,
    QuickstartRun,
    dump,
    sample_peaks,
)

from llmagents.testing.fake_providers import FaultPlan
from tooling import _proc
from tooling.cluster import LocalCluster, default_state_root
from tooling.node import NETNS_ENV, NodeUnavailable, RealNode, missing_prerequisites
from tooling.polling import eventually

E2E_DIR = Path(__file__).parent
MEMORY_REPORT = Path(
    os.environ.get("LLMAGENTS_E2E_MEMORY_REPORT", "/tmp/llmagents-e2e-memory.json")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(NETNS_ENV) == "1":
        return
    skip = pytest.mark.skip(reason="real-node end-to-end tests: run by `make e2e` (hack/e2e.sh)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(E2E_DIR):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image() -> str:
    """The default image (`make image`): operator, runner, and a sidecar that converts
    SmolLM2 on first start."""
    return os.environ["LLMAGENTS_E2E_IMAGE"]


@pytest.fixture(scope="session")
def model_image() -> str:
    """The with-model image (`make image-with-model`): SmolLM2 baked in, no converter."""
    return os.environ["LLMAGENTS_E2E_MODEL_IMAGE"]


@pytest.fixture(scope="session")
def agent_image() -> str:
    """The gateway agent's own image (tests/e2e/agent): the OpenAI SDK and a short script."""
    return os.environ["LLMAGENTS_E2E_AGENT_IMAGE"]


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
def node(
    cluster: LocalCluster, image: str, model_image: str, agent_image: str
) -> Iterator[RealNode]:
    if missing := missing_prerequisites():
        pytest.fail(f"a real node cannot run here: needs {', '.join(missing)}", pytrace=False)
    real = RealNode(cluster)
    try:
        real.start([image, model_image, agent_image], timeout=600)
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
def chart(kube: Kube, image: str) -> Chart:
    """The chart's release as installed: the default image for every pod (the operator,
    runners and ONNX sidecars), as users get it."""
    kube.restricted_namespace(OPERATOR_NS)
    return Chart(kube, image)


@pytest.fixture
def release(chart: Chart) -> str:
    """The chart installed and its operator Ready (installed again after an uninstall)."""
    chart.ensure_installed()
    return RELEASE


@pytest.fixture(scope="session")
def agents_ns(kube: Kube) -> str:
    """Where the agents run: a namespace enforcing the restricted Pod Security Standard."""
    kube.restricted_namespace(AGENTS_NS)
    return AGENTS_NS


@pytest.fixture(scope="session")
def memory_report() -> Iterator[dict[str, dict[str, int]]]:
    """Peak memory of containers by run, written at the end (as bench/README.md records)."""
    report: dict[str, dict[str, int]] = {}
    yield report
    if report:
        MEMORY_REPORT.write_text(json.dumps(report, indent=2))


@pytest.fixture(scope="session")
def quickstart(
    kube: Kube, chart: Chart, fakes: Fakes, agents_ns: str,
    memory_report: dict[str, dict[str, int]],
) -> QuickstartRun:  # fmt: skip
    """The quickstart as users apply it, under the chart's defaults: the default image, so
    its ONNX sidecar converts SmolLM2 on first start; claude and gpt both down."""
    chart.ensure_installed()
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    fakes.openai.set_faults(FaultPlan(outage=True))
    before = fakes.requests()
    kube.ok("-n", agents_ns, "apply", "-f", "-", input=dump(fakes.quickstart()))
    run = QuickstartRun()

    def completed() -> bool:
        pod = kube.pod(agents_ns, "app.kubernetes.io/instance=quickstart")
        run.sample(pod)
        if pod is not None and not run.runner_log:
            logs = kube.kubectl("-n", agents_ns, "logs", "deploy/quickstart", "-c", "runner")
            run.runner_log = logs.stdout if logs.returncode == 0 and "task" in logs.stdout else ""
        if pod is not None and "converted" not in run.onnx_log:  # it converts first
            logs = kube.kubectl("-n", agents_ns, "logs", "deploy/quickstart", "-c", "onnx")
            run.onnx_log = logs.stdout if logs.returncode == 0 else run.onnx_log
        return kube.agent(agents_ns, "quickstart").get("status", {}).get("phase") == "Completed"

    eventually(completed, timeout=900, what="quickstart to complete", every=1.0,
               details=lambda: kube.diagnostics(agents_ns))  # fmt: skip
    sample_peaks(kube.pod(OPERATOR_NS, "app.kubernetes.io/name=llmagents"), run.peaks)
    memory_report["quickstart (default image: the sidecar converts on first start)"] = run.peaks
    print(f"peak memory (bytes) of the quickstart's containers and the operator: {run.peaks}")
    after = fakes.requests()
    run.requests = {k: after[k] - before[k] for k in after}
    return run


@pytest.fixture(scope="session")
def gateway_agent(
    kube: Kube, chart: Chart, fakes: Fakes, agents_ns: str, agent_image: str
) -> GatewayRun:
    """A gateway-mode agent whose container (the OpenAI SDK) asks the runner three
    questions over the pod's loopback while claude is down; no local model in its pool."""
    chart.ensure_installed()
    fakes.anthropic.set_faults(FaultPlan(outage=True))
    fakes.openai.set_faults(FaultPlan())
    docs = fakes.quickstart("gateway", local=False)
    agent = next(d for d in docs if d["kind"] == "LLMAgent")
    agent["spec"]["work"] = {"agent": {"image": agent_image}}
    kube.ok("-n", agents_ns, "apply", "-f", "-", input=dump(docs))

    def answered() -> str:
        logs = kube.kubectl("-n", agents_ns, "logs", "deploy/gateway", "-c", "agent")
        return logs.stdout if "all 3 answered" in logs.stdout else ""

    log = eventually(answered, timeout=600, what="the agent's three answers",
                     details=lambda: kube.diagnostics(agents_ns))  # fmt: skip

    # The runner reports spend with its next status write, not with each answer.
    def spend_reported() -> dict[str, Any] | None:
        status: dict[str, Any] = kube.agent(agents_ns, "gateway").get("status", {})
        return status if (status.get("cost") or {}).get("totalUSD") else None

    status = eventually(spend_reported, timeout=120, what="the gateway agent's spend in its status")
    return GatewayRun(log, status)


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
