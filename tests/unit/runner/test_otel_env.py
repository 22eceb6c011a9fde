"""The standard OpenTelemetry environment, as the runner reads it: OTLP over gRPC to a real gRPC
trace service, the variables that turn traces off, the resource a user names, and a protocol
the runner cannot speak refused with a condition instead of spans sent nowhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmagents.runner import otel

from .conftest import Edges, Fakes, config
from .test_tracing import PARENT_ID, OtlpReceiver, _served_call


class GrpcOtlpReceiver(OtlpReceiver, trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace service (opentelemetry.proto.collector.trace.v1.TraceService)."""

    def __init__(self) -> None:
        super().__init__()
        self._server: grpc.aio.Server | None = None
        self.metadata: list[dict[str, str]] = []

    async def Export(
        self, request: ExportTraceServiceRequest, context: Any
    ) -> ExportTraceServiceResponse:
        self.metadata.append(dict(context.invocation_metadata()))
        self.received(request, request.SerializeToString())
        return ExportTraceServiceResponse()

    async def start(self) -> None:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)


@pytest.fixture
async def grpc_receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GrpcOtlpReceiver]:
    started = GrpcOtlpReceiver()
    await started.start()
    monkeypatch.setenv(otel.ENV_ENDPOINT, f"http://127.0.0.1:{started.port}")
    monkeypatch.setenv(otel.ENV_PROTOCOL, "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team-a")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    yield started
    await started.stop()


async def test_grpc_exports_the_same_spans_to_a_grpc_trace_service(
    grpc_receiver: GrpcOtlpReceiver, fakes: Fakes, edges: Edges
) -> None:
    await _served_call(fakes, edges)
    (call,) = [s for s in grpc_receiver.spans if s["parent"] == PARENT_ID]
    attempts = [s for s in grpc_receiver.spans if s["parent"] == call["span_id"]]
    assert call["attributes"]["llmagents.fallbacks"] == 1 and len(attempts) == 2
    assert grpc_receiver.metadata[0]["x-tenant"] == "team-a"


async def test_the_traces_protocol_variable_wins_over_the_general_one(
    grpc_receiver: GrpcOtlpReceiver, monkeypatch: pytest.MonkeyPatch, fakes: Fakes, edges: Edges
) -> None:
    monkeypatch.setenv(otel.ENV_PROTOCOL, "http/protobuf")
    monkeypatch.setenv(otel.ENV_TRACES_PROTOCOL, "grpc")
    await _served_call(fakes, edges)
    assert grpc_receiver.spans


async def test_service_name_and_resource_attributes_name_the_resource(
    monkeypatch: pytest.MonkeyPatch, fakes: Fakes, edges: Edges
) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        monkeypatch.setenv(otel.ENV_ENDPOINT, f"http://127.0.0.1:{receiver.port}")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.setenv(otel.ENV_SERVICE_NAME, "writer-agent")
        monkeypatch.setenv(otel.ENV_RESOURCE_ATTRIBUTES,
                           "deployment.environment=prod,service.name=not-this,"
                           "k8s.cluster.name=eu%2Cwest,broken")  # fmt: skip
        await _served_call(fakes, edges)
    finally:
        await receiver.stop()
    (resource,) = {frozenset(r.items()) for r in receiver.resources}
    attributes = dict(resource)
    assert attributes["service.name"] == "writer-agent"  # OTEL_SERVICE_NAME wins
    assert attributes["deployment.environment"] == "prod"
    assert attributes["k8s.cluster.name"] == "eu,west"  # percent-decoded
    assert attributes["llmagents.agent"] == "agent-a"  # the runner's own stay


@pytest.mark.parametrize(
    "env",
    [
        {otel.ENV_SDK_DISABLED: "true"},
        {otel.ENV_SDK_DISABLED: "TRUE", otel.ENV_PROTOCOL: "http/json"},
        {otel.ENV_TRACES_EXPORTER: "none"},
    ],
)
def test_the_sdk_switches_turn_traces_off_even_with_an_endpoint(env: dict[str, str]) -> None:
    env = {otel.ENV_ENDPOINT: "http://127.0.0.1:4318", **env}
    assert otel.from_environment(agent="a", namespace="n", env=env) is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({otel.ENV_PROTOCOL: "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
        ({otel.ENV_TRACES_PROTOCOL: "grcp"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='grcp'"),
        ({otel.ENV_TRACES_EXPORTER: "zipkin"}, "OTEL_TRACES_EXPORTER='zipkin'"),
    ],
)
def test_what_the_runner_cannot_send_is_refused_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    env = {otel.ENV_ENDPOINT: "http://127.0.0.1:4318", **env}
    with pytest.raises(otel.TracingRefused, match="no traces are exported") as refused:
        otel.from_environment(agent="a", namespace="n", env=env)
    assert named in str(refused.value)


async def test_a_refused_tracing_setup_is_a_condition_on_the_agent(
    fakes: Fakes, edges: Edges
) -> None:
    env = {otel.ENV_ENDPOINT: "http://127.0.0.1:4318", otel.ENV_PROTOCOL: "http/json"}
    with pytest.raises(otel.TracingRefused) as refused:
        otel.from_environment(agent="a", namespace="n", env=env)
    runner = edges.runner(config(fakes, tasks=None), tracing_refused=str(refused.value))
    (condition,) = [c for c in runner._report().conditions if c.type == "TracingMisconfigured"]
    assert condition.status.value == "True" and condition.reason == "TracingRefused"
    assert "http/json" in condition.message and "http/protobuf" in condition.message
    await runner.close()
