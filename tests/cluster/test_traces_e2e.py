"""Traces end to end: the operator told to send the runners' traces by OTLP/gRPC (as the chart's
runner.tracing values tell it) and a runner pod whose calls fell back, received by a real gRPC
trace service in the test."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from test_operator import OperatorProcess
from test_runner_e2e import (  # noqa: F401 (fixtures; crds is autouse)
    Fakes,
    apply_agent,
    crds,
    fakes,
    setup,
    status,
)

from tooling.cluster import ClusterInfo, Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _attributes(items: list[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        kind = item.value.WhichOneof("value")
        out[item.key] = getattr(item.value, kind) if kind else None
    return out


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC: keeps (resource attributes, span name, span attributes) of each span."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], str, dict[str, Any]]] = []

    def Export(
        self, request: ExportTraceServiceRequest, context: Any
    ) -> ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = _attributes(list(resource_spans.resource.attributes))
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append((resource, span.name, _attributes(list(span.attributes))))
        return ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[TraceService, int]]:
    service = TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, port
    server.stop(grace=None)


def test_runner_pods_send_their_spans_by_grpc_where_the_operator_says(
    cluster: ClusterInfo,
    namespace: str,
    tmp_path: Path,
    kubectl: Kubectl,
    process_kubelet: ProcessKubelet,
    fakes: Fakes,  # noqa: F811
    collector: tuple[TraceService, int],
) -> None:
    service, port = collector
    operator = OperatorProcess(
        cluster.kubeconfig, namespace, tmp_path / "operator.log", "--no-leader-election",
        f"--runner-otlp-endpoint=http://127.0.0.1:{port}", "--runner-otlp-protocol=grpc",
        "--runner-otel-service-name=agents-e2e",
        "--runner-otel-resource-attributes=deployment.environment=test",
    )  # fmt: skip
    operator.start()
    try:
        fakes.primary.update_faults(outage=True)
        setup(kubectl, fakes)
        apply_agent(kubectl, "writer", tasks=2, budget={"limit": 10})
        eventually(lambda: status(kubectl, "writer").get("phase") == "Completed", timeout=120,
                   what="writer completed on the fallback")  # fmt: skip

        def fallen_back() -> list[Any] | None:
            calls = [s for s in service.spans
                     if s[1] == "chat" and s[2].get("llmagents.provider") == "fallback"]  # fmt: skip
            return calls if len(calls) == 2 else None

        calls = eventually(fallen_back, timeout=60, what="both task spans at the collector")
    finally:
        operator.stop()
    resource, _, attributes = calls[0]
    assert resource["service.name"] == "agents-e2e"
    assert resource["deployment.environment"] == "test"
    assert resource["llmagents.agent"] == "writer" and resource["k8s.namespace.name"] == namespace
    assert attributes["llmagents.task"] in ("task-0", "task-1")
    attempts = [s for s in service.spans if s[1] == "chat gpt-4o-mini"]
    assert attempts and all(s[2]["error.type"] for s in attempts)
