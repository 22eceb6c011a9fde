"""CPU the runner's tracing adds to a call when it is on (OTEL_EXPORTER_OTLP_ENDPOINT set).

Per call the tracer makes a call span and one span per attempt (``runner/tracing.py``); this
measures that work for a call answered at its first attempt, with the SDK's batch processor
and an exporter that drops everything (the export itself runs in the SDK's own thread and
is not on a call's path), next to two bare SDK spans with as many attributes, which is the
floor any OpenTelemetry tracing pays. CPU time (``time.process_time``), so that other work
on the machine does not count. With tracing off the runner pays one ``is None`` test.

Run: ``.venv/bin/python bench/tracing.py [--calls 20000]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from llmagents.api.pool import ProviderSpec
from llmagents.chat import ChatRequest, ChatResponse, Message, Role, Usage
from llmagents.routing import Attempt, CallResult, CallTask
from llmagents.runner.tracing import CallTracer, use_call_span


class _Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropped()))
    return provider


def traced_calls(calls: int) -> float:
    """CPU microseconds per call of the tracer's spans (one call, one attempt)."""
    provider = _provider()
    tracer = CallTracer(provider.get_tracer("bench"), agent="bench")
    spec = ProviderSpec.model_validate({"name": "p", "type": "openai", "model": "m",
                                        "baseURL": "http://127.0.0.1:1/v1",
                                        "secretRef": {"name": "k"}})  # fmt: skip
    request = ChatRequest(messages=[Message(Role.USER, "hello")])
    task = CallTask(input_tokens=5)
    answer = ChatResponse(text="hi", usage=Usage(5, 5), model="m")
    began = time.process_time()
    for _ in range(calls):
        span = tracer.start_call(request, task, stream=False)
        with use_call_span(span), tracer.attempt(Attempt(spec, 1, 0, 5.0)) as attempt:
            tracer.answered(attempt, answer.usage, answer.model)
        tracer.end_call(span, CallResult("p", answer, [], [], 0.01, answer.usage, 1e-4, True))
    elapsed = time.process_time() - began
    provider.shutdown()
    return elapsed * 1e6 / calls


def bare_spans(calls: int) -> float:
    """CPU microseconds per pair of bare SDK spans with the same number of attributes."""
    provider = _provider()
    tracer = provider.get_tracer("bench")
    few = {f"a{i}": i for i in range(4)}
    many = {f"b{i}": i for i in range(12)}
    began = time.process_time()
    for _ in range(calls):
        outer = tracer.start_span("chat", attributes=few)
        inner = tracer.start_span("chat m", attributes=many)
        inner.end()
        outer.set_attributes(many)
        outer.end()
    elapsed = time.process_time() - began
    provider.shutdown()
    return elapsed * 1e6 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    traced_calls(1000), bare_spans(1000)  # warm up
    print("| what, per call | CPU |\n|---|---|")
    print(f"| tracer: call span + one attempt span | {traced_calls(args.calls):.0f} us |")
    print(f"| two bare SDK spans, as many attributes | {bare_spans(args.calls):.0f} us |")


if __name__ == "__main__":
    main()
