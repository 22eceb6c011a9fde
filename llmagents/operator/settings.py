"""What the operator is configured with, and the names and labels its objects carry.

Kept apart from the builders so that the builders stay pure functions of (agent, pool,
settings), and tests build manifests with any settings they like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmagents import __version__
from llmagents.api.runner_config import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_ONNX_PORT,
)

DEFAULT_IMAGE = f"ghcr.io/llmagents/llmagents:{__version__}"
ENV_IMAGE = "LLMAGENTS_IMAGE"
"""The operator's environment variable naming the runner image (``--image`` wins)."""
ENV_RUNNER_OTLP_ENDPOINT = "LLMAGENTS_RUNNER_OTLP_ENDPOINT"
"""The operator's environment variable naming the runners' trace endpoint (the flag wins)."""
ENV_RUNNER_OTLP_PROTOCOL = "LLMAGENTS_RUNNER_OTLP_PROTOCOL"
"""The operator's environment variable naming the runners' OTLP protocol (the flag wins)."""
ENV_RUNNER_OTEL_SERVICE_NAME = "LLMAGENTS_RUNNER_OTEL_SERVICE_NAME"
"""The operator's environment variable naming the runners' trace service (the flag wins)."""
ENV_RUNNER_OTEL_RESOURCE_ATTRIBUTES = "LLMAGENTS_RUNNER_OTEL_RESOURCE_ATTRIBUTES"
"""The operator's environment variable with the runners' extra trace resource attributes."""
ENV_RUNNER_CA_BUNDLE_CONFIG_MAP = "LLMAGENTS_RUNNER_CA_BUNDLE_CONFIG_MAP"
"""The operator's environment variable naming the runners' CA bundle ConfigMap (flag wins)."""
ENV_RUNNER_CA_BUNDLE_KEY = "LLMAGENTS_RUNNER_CA_BUNDLE_KEY"
"""The operator's environment variable naming that ConfigMap's key (the flag wins)."""
CA_BUNDLE_MOUNT = "/etc/llmagents/ca"
"""Where the runner container sees the CA bundle, read-only, as ``ca.crt``."""
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
"""The OTLP protocols the runner exports traces by (runner.otel)."""

MANAGED_BY = "llmagents-operator"
LABEL_AGENT = "llmagents.dev/agent"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_HASH = "llmagents.dev/applied-hash"
"""Hash of the manifest the operator last applied to a child; unchanged hash = no write."""
ANNOTATION_CONFIG_HASH = "llmagents.dev/config-hash"
"""On the pod template: a new runner configuration rolls the Deployment."""
MODEL_MOUNT = "/models"


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Knobs of the manifests the operator builds."""

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    metrics_port: int = DEFAULT_METRICS_PORT
    gateway_port: int = DEFAULT_GATEWAY_PORT
    onnx_port: int = DEFAULT_ONNX_PORT
    termination_grace_seconds: int = 30
    """Time the runner gets on SIGTERM to write a final checkpoint."""
    runner_resources: dict[str, Any] | None = None
    """The runner container's resources when the agent sets none (chart: runner.resources)."""
    onnx_resources: dict[str, Any] | None = None
    """The ONNX sidecar's resources when the agent sets none (chart: runner.onnxResources)."""
    runner_otlp_endpoint: str | None = None
    """OTLP endpoint the runners send traces to (their OTEL_EXPORTER_OTLP_ENDPOINT);
    None = no traces."""
    runner_otlp_protocol: str | None = None
    """OTLP protocol of that endpoint (their OTEL_EXPORTER_OTLP_PROTOCOL): http/protobuf or
    grpc; None = the runner's default, http/protobuf."""
    runner_otel_service_name: str | None = None
    """The runners' trace ``service.name`` (their OTEL_SERVICE_NAME); None = llmagents-runner."""
    runner_otel_resource_attributes: str | None = None
    """More resource attributes of the runners' traces, ``key=value,...`` (their
    OTEL_RESOURCE_ATTRIBUTES), such as ``deployment.environment=prod``."""
    runner_ca_bundle_config_map: str | None = None
    """A ConfigMap in each agent's namespace whose ``runner_ca_bundle_key`` holds PEM CA
    certificates the runners trust in addition to Mozilla's (their SSL_CERT_FILE), for a
    provider or https proxy behind a private CA; None = Mozilla's only."""
    runner_ca_bundle_key: str = "ca.crt"
    """The key of that ConfigMap holding the bundle."""
