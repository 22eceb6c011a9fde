"""OpenTelemetry traces of the runner's model calls, in the GenAI semantic conventions.

Off unless the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; then spans go by OTLP (over HTTP, or gRPC
when ``OTEL_EXPORTER_OTLP_PROTOCOL`` says so) to that collector, batched in a background
thread, so no call ever waits on the exporter. ``runner.otel`` reads the environment and
makes the tracer.

Each gateway request or task is one span, ``chat`` (``gen_ai.operation.name``; an
embeddings request ``embeddings``), that ends when its answer has been given (a stream's when it ends). Each try at a
provider is a child span of it with that provider's ``gen_ai.provider.name``,
``gen_ai.request.model``, server address, the outcome (``error.type`` is the error kind), its
retry number and the error that made it retry, the fallback that led to it and why, and the
usage it reported.
The call span carries who answered, ``gen_ai.usage.*`` and the cost. A gateway request's
``traceparent`` (W3C Trace Context) is the call span's parent, so an agent's own trace
continues through the runner to its providers.

What a span never holds: an API key, a header, or (unless the pool sets
``tracing.capturePromptContent``) a prompt or an answer. Error messages pass the runner's
redactor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmagents.api.pool import ProviderSpec, ProviderType
from llmagents.chat import ChatRequest, ChatResponse, Usage
from llmagents.errors import ProviderError
from llmagents.routing import Attempt, CallResult, CallTask, EngineListener, Fallback

logger = logging.getLogger(__name__)

SCOPE = "llmagents.runner"

PROVIDER_NAMES = {
    ProviderType.ANTHROPIC: "anthropic",
    ProviderType.GEMINI: "gcp.gemini",
    ProviderType.OPENAI: "openai",
    ProviderType.ONNX: "llmagents.onnx",
}
"""``gen_ai.provider.name`` per provider type (the conventions' values where they have one)."""

_PROPAGATOR = TraceContextTextMapPropagator()

T = TypeVar("T")


def use_call_span(span: Span) -> Any:
    """Make ``span`` current (the parent of attempt spans) without ending it on exit."""
    return trace.use_span(span, end_on_exit=False, record_exception=False,
                          set_status_on_exception=False)  # fmt: skip


class CallTracer(EngineListener):
    """Makes the spans of calls; an ``EngineListener`` so that it learns of fallbacks."""

    def __init__(
        self,
        tracer: trace.Tracer,
        *,
        agent: str,
        capture_content: bool = False,
        redact: Callable[[str], str] = lambda text: text,
        shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.tracer = tracer
        self.agent = agent
        self.capture_content = capture_content
        self._redact = redact
        self._shutdown = shutdown
        self._fallbacks: dict[int, Fallback] = {}
        """The fallback that leads to the next attempt, by call span id."""
        self._failed: dict[tuple[int, str], str] = {}
        """The error kind of the latest failed attempt, by call span id and provider."""

    # -- incoming context ---------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def incoming(headers: Mapping[str, str]) -> Iterator[None]:
        """Make the request's ``traceparent`` the parent of the spans started inside."""
        if "traceparent" not in headers:
            yield
            return
        token = otel_context.attach(_PROPAGATOR.extract(headers))
        try:
            yield
        finally:
            otel_context.detach(token)

    # -- the call span --------------------------------------------------------------------------

    def start_embeddings(self, task: CallTask, *, inputs: int) -> Span:
        """The span of an embeddings call (``gen_ai.operation.name`` ``embeddings``)."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "embeddings",
            "llmagents.agent": self.agent,
            "llmagents.inputs": inputs,
        }
        return self.tracer.start_span("embeddings", kind=SpanKind.CLIENT, attributes=attributes)

    def start_call(self, request: ChatRequest, task: CallTask, *, stream: bool) -> Span:
        # The model is each provider's (on the attempt spans): the call itself has none, so
        # its name is the operation alone, as the conventions say for that case.
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.stream": stream,
            "llmagents.agent": self.agent,
        }
        if task.name:
            attributes["llmagents.task"] = task.name
        for key, value in (("gen_ai.request.max_tokens", request.max_tokens),
                           ("gen_ai.request.temperature", request.temperature),
                           ("gen_ai.request.top_p", request.top_p)):  # fmt: skip
            if value is not None:
                attributes[key] = value
        if self.capture_content:
            attributes["gen_ai.input.messages"] = _messages(request)
        return self.tracer.start_span("chat", kind=SpanKind.CLIENT, attributes=attributes)

    async def run_call(self, span: Span, run: Callable[[], Awaitable[T]]) -> T:
        """``run()`` with ``span`` as the current call span (the attempts' parent); a failure
        ends the span with it, a success leaves ending it to the caller."""
        try:
            with use_call_span(span):
                return await run()
        except BaseException as error:
            self.end_call(span, None, error=error)
            raise

    def end_call(
        self, span: Span, result: CallResult[Any] | None, *, error: BaseException | None = None
    ) -> None:
        """End a call span with who answered, usage and cost, or with the error that ended it."""
        span_id = span.get_span_context().span_id
        self._fallbacks.pop(span_id, None)
        for key in [k for k in self._failed if k[0] == span_id]:
            del self._failed[key]
        if result is not None:
            # One set_attributes: the SDK validates and locks per call, not per attribute.
            attributes: dict[str, Any] = {
                "llmagents.provider": result.provider,
                "llmagents.cost_usd": result.cost,
                "llmagents.attempts": len(result.attempts),
                "llmagents.fallbacks": len(result.fallbacks),
            }
            if result.usage is not None:
                attributes.update(_usage(result.usage))
            value = result.value
            if isinstance(value, ChatResponse):
                attributes["gen_ai.response.model"] = value.model
                if value.finish_reason:
                    attributes["gen_ai.response.finish_reasons"] = [value.finish_reason]
                if self.capture_content:
                    attributes["gen_ai.output.messages"] = _answer(value)
            span.set_attributes(attributes)
        if error is not None:
            span.set_attribute("error.type", _error_type(error))
            span.set_status(Status(StatusCode.ERROR, self._redact(str(error))[:1024]))
        span.end()

    # -- attempts -------------------------------------------------------------------------------

    @contextmanager
    def attempt(
        self, attempt: Attempt, *, operation: str = "chat", model: str | None = None
    ) -> Iterator[Span]:
        """The span of one try, a child of the current call span; ``model`` replaces the
        provider's chat model (an embedding model)."""
        spec = attempt.provider
        parent_id = trace.get_current_span().get_span_context().span_id
        attributes = self._attempt_attributes(spec, attempt)
        model = model or spec.model
        attributes["gen_ai.operation.name"] = operation
        attributes["gen_ai.request.model"] = model
        fallback = self._fallbacks.pop(parent_id, None)
        if fallback is not None:
            attributes["llmagents.fallback.from"] = fallback.from_provider
            attributes["llmagents.fallback.reason"] = fallback.reason
        if attempt.retry:
            attributes["llmagents.retry.reason"] = self._failed.get((parent_id, spec.name), "")
        span = self.tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT,
                                      attributes=attributes)  # fmt: skip
        try:
            yield span
        except ProviderError as error:
            span.set_attribute("error.type", error.kind.value)
            span.set_status(Status(StatusCode.ERROR, self._redact(error.message)[:1024]))
            if parent_id:
                self._failed[(parent_id, spec.name)] = error.kind.value
            raise
        except BaseException as error:
            span.set_attribute("error.type", type(error).__name__)
            raise
        finally:
            span.end()

    @staticmethod
    def answered(span: Span, usage: Usage | None, model: str | None = None) -> None:
        attributes: dict[str, Any] = _usage(usage) if usage is not None else {}
        if model:
            attributes["gen_ai.response.model"] = model
        span.set_attributes(attributes)

    def _attempt_attributes(self, spec: ProviderSpec, attempt: Attempt) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER_NAMES[spec.type],
            "gen_ai.request.model": spec.model,
            "llmagents.provider": spec.name,
            "llmagents.attempt": attempt.number,
            "llmagents.retry": attempt.retry,
            "llmagents.probe": attempt.probe,
        }
        if spec.base_url:
            parts = urlsplit(spec.base_url)
            if parts.hostname:
                attributes["server.address"] = parts.hostname
            if parts.port:
                attributes["server.port"] = parts.port
        return attributes

    # -- engine events ----------------------------------------------------------------------------

    def on_fallback(self, fallback: Fallback) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        self._fallbacks[span.get_span_context().span_id] = fallback
        span.add_event("llmagents.fallback", {"llmagents.fallback.from": fallback.from_provider,
                                              "llmagents.fallback.to": fallback.to_provider,
                                              "llmagents.fallback.reason": fallback.reason})  # fmt: skip

    def shutdown(self) -> None:
        """Export what is buffered (bounded by the exporter's timeout) and stop."""
        if self._shutdown is not None:
            self._shutdown()


def _usage(usage: Usage) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cached_input_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    if usage.cache_write_input_tokens:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_input_tokens
    if usage.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return attributes


def _error_type(error: BaseException) -> str:
    kind = getattr(error, "kind", None)
    return str(getattr(kind, "value", kind)) if kind is not None else type(error).__name__


def _messages(request: ChatRequest) -> str:
    return json.dumps([{"role": str(m.role), "parts": [{"type": "text", "content": m.text}]}
                       for m in request.messages])  # fmt: skip


def _answer(response: ChatResponse) -> str:
    return json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": response.text}],
                        "finish_reason": response.finish_reason or ""}])  # fmt: skip
