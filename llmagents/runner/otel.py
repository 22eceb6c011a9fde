"""The runner's traces as the standard OpenTelemetry environment variables configure them.

Honoured, with the SDK's names and meanings:

- ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``: no traces;
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``): where; unset, no traces;
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``..._TRACES_PROTOCOL``): ``http/protobuf`` (the
  default) or ``grpc``;
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``: the resource; the runner's own
  attributes (``service.name`` ``llmagents-runner``, the namespace, pod and agent) are
  defaults they override;
- the exporter's and batch processor's own (``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``,
  ``..._COMPRESSION``, ``..._CERTIFICATE``, ``OTEL_BSP_*``, ``OTEL_TRACES_SAMPLER``), read
  by the SDK.

What the runner cannot do is refused rather than guessed: ``http/json`` (the Python SDK has
no such exporter), a traces exporter other than ``otlp``, a value it does not know. Falling
back to another protocol would send spans to a port that does not speak it, lost without a
word; instead ``TracingRefused`` is raised, and the runner logs it, exports nothing, and
sets the condition ``TracingMisconfigured`` on its agent (``runner.main``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from llmagents.errors import LLMAgentsError
from llmagents.runner.tracing import SCOPE, CallTracer

logger = logging.getLogger(__name__)

ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
ENV_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
ENV_SDK_DISABLED = "OTEL_SDK_DISABLED"
ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"

HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"
PROTOCOLS = (HTTP_PROTOBUF, GRPC)
SERVICE_NAME = "llmagents-runner"


class TracingRefused(LLMAgentsError):
    """The environment asks for traces the runner cannot send; it sends none."""


def disabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment turns traces off (``OTEL_SDK_DISABLED``,
    ``OTEL_TRACES_EXPORTER=none``)."""
    if env.get(ENV_SDK_DISABLED, "").strip().lower() == "true":
        return True
    return env.get(ENV_TRACES_EXPORTER, "").strip().lower() == "none"


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether traces are on: an endpoint is set and nothing turns them off."""
    return bool(env.get(ENV_TRACES_ENDPOINT) or env.get(ENV_ENDPOINT)) and not disabled(env)


def protocol(env: Mapping[str, str] = os.environ) -> str:
    """The OTLP protocol asked for; ``TracingRefused`` for one the runner cannot speak."""
    for name in (ENV_TRACES_PROTOCOL, ENV_PROTOCOL):
        value = env.get(name, "").strip()
        if value:
            break
    else:
        return HTTP_PROTOBUF
    if value in PROTOCOLS:
        return value
    hint = " (the Python SDK has no OTLP/JSON exporter)" if value == "http/json" else ""
    raise TracingRefused(f"{name}={value!r} is not supported{hint}: set it to http/protobuf "
                         "(collector port 4318) or grpc (port 4317); no traces are exported")  # fmt: skip


def _exporter_kind(env: Mapping[str, str]) -> None:
    exporters = [e.strip() for e in env.get(ENV_TRACES_EXPORTER, "").split(",") if e.strip()]
    unsupported = [e for e in exporters if e not in ("otlp", "none")]
    if unsupported:
        raise TracingRefused(f"{ENV_TRACES_EXPORTER}={env[ENV_TRACES_EXPORTER]!r}: the runner "
                             "exports traces by otlp only; no traces are exported")  # fmt: skip


def resource_attributes(env: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The resource: ``defaults``, then ``OTEL_RESOURCE_ATTRIBUTES`` (comma-separated
    ``key=value``, values percent-encoded), then ``OTEL_SERVICE_NAME``, each winning over
    the one before, as the specification orders them."""
    attributes = dict(defaults)
    for item in env.get(ENV_RESOURCE_ATTRIBUTES, "").split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            if item.strip():
                logger.warning("%s: ignoring %r, which is not key=value",
                               ENV_RESOURCE_ATTRIBUTES, item)  # fmt: skip
            continue
        attributes[key.strip()] = unquote(value.strip())
    service = env.get(ENV_SERVICE_NAME, "").strip()
    if service:
        attributes["service.name"] = service
    return attributes


def _span_exporter(chosen: str) -> Any:
    # Each exporter reads the endpoint, headers, timeout, compression and certificate from
    # the environment itself (for grpc, an http:// endpoint means a plain-text channel).
    if chosen == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def from_environment(
    *,
    agent: str,
    namespace: str,
    capture_content: bool = False,
    redact: Callable[[str], str] = lambda text: text,
    env: Mapping[str, str] = os.environ,
) -> CallTracer | None:
    """A tracer exporting as the environment says; None when traces are off;
    ``TracingRefused`` when it asks for what the runner cannot send."""
    if disabled(env):
        if env.get(ENV_TRACES_ENDPOINT) or env.get(ENV_ENDPOINT):
            logger.info("agent %s: traces are off (%s)", agent,
                        f"{ENV_SDK_DISABLED}=true" if env.get(ENV_SDK_DISABLED) else
                        f"{ENV_TRACES_EXPORTER}=none")  # fmt: skip
        return None
    if not enabled(env):
        return None
    _exporter_kind(env)
    chosen = protocol(env)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    defaults = {
        "service.name": SERVICE_NAME,
        "k8s.namespace.name": namespace,
        "k8s.pod.name": socket.gethostname(),
        "llmagents.agent": agent,
    }
    provider = TracerProvider(resource=Resource.create(resource_attributes(env, defaults)))
    provider.add_span_processor(BatchSpanProcessor(_span_exporter(chosen)))
    logger.info("agent %s: tracing to %s by OTLP %s", agent,
                env.get(ENV_TRACES_ENDPOINT) or env.get(ENV_ENDPOINT), chosen)  # fmt: skip

    def shutdown() -> None:
        started = time.monotonic()
        provider.shutdown()
        logger.debug("agent %s: traces flushed in %.2fs", agent, time.monotonic() - started)

    return CallTracer(provider.get_tracer(SCOPE), agent=agent, capture_content=capture_content,
                      redact=redact, shutdown=shutdown)  # fmt: skip
