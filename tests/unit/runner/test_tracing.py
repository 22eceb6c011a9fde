"""Traces: the runner's OTLP/HTTP export, received by a real OTLP endpoint built in the test
from the opentelemetry-proto messages, of gateway calls sent by OpenAI's own client."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from llmagents.runner import otel, tracing

from .conftest import FALLBACK_KEY, PRIMARY_KEY, Edges, Fakes, config, openai_client, serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
PROMPT = "Name three colours of the rainbow, secret-word-xyzzy"


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received(ExportTraceServiceRequest.FromString(body), body)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")  # fmt: skip

    def received(self, export: ExportTraceServiceRequest, body: bytes) -> None:
        self.bodies.append(body)
        for resource_spans in export.resource_spans:
            self.resources.append(_attributes(resource_spans.resource.attributes))
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(),
                        "attributes": _attributes(span.attributes),
                        "status": span.status.code,
                        "events": [e.name for e in span.events],
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                    })  # fmt: skip

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OtlpReceiver]:
    started = OtlpReceiver()
    await started.start()
    monkeypatch.setenv(otel.ENV_ENDPOINT, f"http://127.0.0.1:{started.port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    yield started
    await started.stop()


async def _served_call(
    fakes: Fakes, edges: Edges, *, capture: bool = False, stream: bool = False
) -> None:
    cfg = config(fakes, tasks=None, budget={"limit": 100})
    tracer = otel.from_environment(agent="agent-a", namespace="ns", capture_content=capture)
    assert tracer is not None
    runner = edges.runner(cfg, tracer=tracer)
    # Leaving serving() shuts the runner down, which flushes the spans to the receiver.
    async with serving(runner) as origin:
        fakes.primary.core.update({"outage": True})
        client = openai_client(origin)
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        messages = [{"role": "user", "content": PROMPT}]
        if stream:
            chunks = await client.chat.completions.create(
                model="auto", messages=messages, stream=True, extra_headers=headers,
                stream_options={"include_usage": True},
            )  # fmt: skip
            async for _ in chunks:
                pass
        else:
            await client.chat.completions.create(model="auto", messages=messages,
                                                 extra_headers=headers)  # fmt: skip


async def test_a_call_that_fell_back_is_one_span_with_a_child_per_attempt_in_the_callers_trace(
    receiver: OtlpReceiver, fakes: Fakes, edges: Edges
) -> None:
    await _served_call(fakes, edges, capture=False, stream=False)
    spans = receiver.spans
    (call,) = [s for s in spans if s["parent"] == PARENT_ID]
    assert call["trace_id"] == TRACE_ID  # the agent's own trace continues through the gateway
    assert call["name"] == "chat"
    attributes = call["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["llmagents.provider"] == "fallback"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["llmagents.fallbacks"] == 1 and attributes["llmagents.cost_usd"] > 0
    assert "llmagents.fallback" in call["events"]

    attempts = sorted((s for s in spans if s["parent"] == call["span_id"]),
                      key=lambda s: s["start"])  # fmt: skip
    assert [a["attributes"]["llmagents.provider"] for a in attempts] == ["primary", "fallback"]
    failed, answered = attempts
    assert failed["name"] == "chat gpt-4o-mini"
    assert failed["attributes"]["gen_ai.provider.name"] == "openai"
    assert failed["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert failed["attributes"]["server.address"] == "127.0.0.1"
    assert failed["attributes"]["error.type"] in ("server_error", "overloaded")
    assert failed["status"] == 2  # STATUS_CODE_ERROR
    assert answered["attributes"]["llmagents.fallback.from"] == "primary"
    assert answered["attributes"]["llmagents.fallback.reason"] == failed["attributes"]["error.type"]
    assert answered["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert "error.type" not in answered["attributes"]
    assert all(s["trace_id"] == TRACE_ID for s in [call, *attempts])
    assert call["start"] <= failed["start"] <= answered["end"] <= call["end"]

    assert receiver.resources[0]["service.name"] == "llmagents-runner"
    assert receiver.resources[0]["llmagents.agent"] == "agent-a"
    # Neither the prompt nor a key, anywhere in what was exported.
    everything = b"".join(receiver.bodies)
    for secret in (PROMPT.encode(), b"secret-word-xyzzy", PRIMARY_KEY.encode(),
                   FALLBACK_KEY.encode()):  # fmt: skip
        assert secret not in everything


async def test_a_stream_span_ends_with_the_stream_and_content_is_there_only_when_opted_in(
    receiver: OtlpReceiver, fakes: Fakes, edges: Edges
) -> None:
    await _served_call(fakes, edges, capture=True, stream=True)
    (call,) = [s for s in receiver.spans if s["parent"] == PARENT_ID]
    attributes = call["attributes"]
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.output_tokens"] > 0  # known only once the stream ended
    assert PROMPT in attributes["gen_ai.input.messages"]
    assert PRIMARY_KEY.encode() not in b"".join(receiver.bodies)


def test_tracing_is_off_without_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(otel.ENV_ENDPOINT, raising=False)
    monkeypatch.delenv(otel.ENV_TRACES_ENDPOINT, raising=False)
    assert otel.from_environment(agent="a", namespace="n") is None


async def test_a_retried_attempt_says_which_error_it_retries(fakes: Fakes) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmagents.routing import CallTask
    from llmagents.runner.pool_client import PoolClient
    from llmagents.runner.tasks import task_request

    from .conftest import KEYS

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracing.CallTracer(provider.get_tracer("test"), agent="agent-a")
    cfg = config(fakes, tasks=1)
    providers = [p.model_copy(update={"max_retries": 1}) for p in cfg.pool.providers]
    cfg = cfg.model_copy(update={"pool": cfg.pool.model_copy(update={"providers": providers})})
    engine = PoolClient.build(cfg, api_keys=KEYS, listener=tracer, tracer=tracer)
    fakes.primary.core.update({"script": ["429"]})
    result = await engine.complete(task_request(cfg.tasks[0]), CallTask(input_tokens=5))
    await engine.aclose()
    assert result.provider == "primary"
    attempts = sorted((s for s in exporter.get_finished_spans() if s.name != "chat"),
                      key=lambda s: s.start_time)  # fmt: skip
    assert [
        (a.attributes["llmagents.retry"], a.attributes.get("error.type")) for a in attempts
    ] == [(0, "rate_limited"), (1, None)]
    assert attempts[1].attributes["llmagents.retry.reason"] == "rate_limited"
    assert "llmagents.retry.reason" not in attempts[0].attributes


async def test_an_embeddings_call_is_an_embeddings_span_with_a_child_per_attempt(
    fakes: Fakes, edges: Edges
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmagents.embeddings import EmbeddingRequest
    from llmagents.runner.embedding import embed

    from .test_gateway_embeddings import with_embeddings

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracing.CallTracer(provider.get_tracer("test"), agent="agent-a")
    runner = edges.runner(with_embeddings(config(fakes, tasks=None), None), tracer=tracer)
    fakes.primary.core.update({"outage": True})
    result = await embed(runner.engine, EmbeddingRequest(inputs=("the sea is blue",)),
                         ["primary", "fallback"])  # fmt: skip
    await runner.close()
    assert result.provider == "fallback"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    call = spans["embeddings"]
    assert call.attributes["gen_ai.operation.name"] == "embeddings"
    assert call.attributes["llmagents.provider"] == "fallback"
    assert call.attributes["gen_ai.usage.input_tokens"] > 0
    attempts = [s for s in exporter.get_finished_spans() if s.parent is not None]
    assert {s.name for s in attempts} == {"embeddings text-embedding-3-small"}
    assert sorted(s.attributes["llmagents.provider"] for s in attempts) == ["fallback", "primary"]
    assert all(s.parent.span_id == call.context.span_id for s in attempts)
