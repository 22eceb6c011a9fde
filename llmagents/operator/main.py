"""``llmagents operator``: run the operator, optionally as one of several replicas.

The process serves ``/healthz``, ``/readyz`` and ``/metrics`` on ``--liveness PORT`` from
its start, leader or not: a standby replica is alive and ready (ready to take over), the
leader is ready once kopf has listed everything and its handlers run. With leader
election (the default) only the Lease holder runs kopf; see ``leader``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import uuid
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from llmagents.api.agent import QUANTITY_PATTERN, ResourceRequirements
from llmagents.kube import KubeClient
from llmagents.operator.handlers import OperatorState, register
from llmagents.operator.leader import LeadershipLost, LeaseElector
from llmagents.operator.reconcile import RESYNC_SECONDS
from llmagents.operator.settings import (
    DEFAULT_IMAGE,
    ENV_IMAGE,
    ENV_RUNNER_CA_BUNDLE_CONFIG_MAP,
    ENV_RUNNER_CA_BUNDLE_KEY,
    ENV_RUNNER_OTEL_RESOURCE_ATTRIBUTES,
    ENV_RUNNER_OTEL_SERVICE_NAME,
    ENV_RUNNER_OTLP_ENDPOINT,
    ENV_RUNNER_OTLP_PROTOCOL,
    OTLP_PROTOCOLS,
    OperatorSettings,
)

logger = logging.getLogger(__name__)

LEASE_NAME = "llmagents-operator"


def _resources_arg(text: str) -> dict[str, Any] | None:
    """A container's resources as JSON, checked like an agent's spec.resources."""
    try:
        value = ResourceRequirements.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise argparse.ArgumentTypeError(f"not container resources: {exc}") from exc
    for kind in (value.requests or {}, value.limits or {}):
        for name, quantity in kind.items():  # the API server would refuse every Deployment
            if not re.fullmatch(QUANTITY_PATTERN, str(quantity)):
                raise argparse.ArgumentTypeError(
                    f"not container resources: {name}: {quantity!r} is not a quantity"
                )
    return value.to_wire() or None


def _env_argument(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    *,
    help: str,
    default: str | None = None,
    **kwargs: Any,
) -> None:
    """Add ``flag``, its default taken from the environment variable ``env`` (unset or empty:
    ``default``), its help ending by naming the variable and the default."""
    suffix = f"env {env}" if default is None else f"env {env}; default {default}"
    parser.add_argument(
        flag,
        default=os.environ.get(env) or default,
        help=f"{help.removesuffix('.')} ({suffix}).",
        **kwargs,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="Namespace to watch (repeatable; globs allowed). Default: all namespaces.",
    )  # fmt: skip
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="Watch every namespace (default)."
    )
    _env_argument(parser, "--image", ENV_IMAGE, default=DEFAULT_IMAGE,
                  help="Runner image for agent pods.")  # fmt: skip
    parser.add_argument(
        "--image-pull-policy", default="IfNotPresent", help="Pull policy of runner containers."
    )
    parser.add_argument(
        "--runner-resources", type=_resources_arg, default=None, metavar="JSON",
        help='Runner container resources for agents that set none, e.g. '
        '\'{"requests": {"memory": "96Mi"}, "limits": {"memory": "256Mi"}}\'.',
    )  # fmt: skip
    parser.add_argument(
        "--onnx-resources", type=_resources_arg, default=None, metavar="JSON",
        help="ONNX sidecar resources for agents whose onnx section sets none (same form).",
    )  # fmt: skip
    _env_argument(parser, "--runner-otlp-endpoint", ENV_RUNNER_OTLP_ENDPOINT,
                  help="OTLP endpoint for the runners' traces, e.g. http://otel-collector:4318; "
                  "unset: no traces.")  # fmt: skip
    _env_argument(parser, "--runner-otlp-protocol", ENV_RUNNER_OTLP_PROTOCOL,
                  choices=OTLP_PROTOCOLS,
                  help="OTLP protocol of that endpoint: http/protobuf (port 4318, the default) "
                  "or grpc (port 4317).")  # fmt: skip
    _env_argument(parser, "--runner-otel-service-name", ENV_RUNNER_OTEL_SERVICE_NAME,
                  help="service.name of the runners' traces, their OTEL_SERVICE_NAME; unset: "
                  "llmagents-runner.")  # fmt: skip
    _env_argument(parser, "--runner-otel-resource-attributes",
                  ENV_RUNNER_OTEL_RESOURCE_ATTRIBUTES, metavar="KEY=VALUE,...",
                  help="More resource attributes of the runners' traces, e.g. "
                  "deployment.environment=prod: their OTEL_RESOURCE_ATTRIBUTES.")  # fmt: skip
    _env_argument(parser, "--runner-ca-bundle-config-map", ENV_RUNNER_CA_BUNDLE_CONFIG_MAP,
                  metavar="NAME",
                  help="ConfigMap in each agent's namespace holding PEM CA certificates the "
                  "runners trust besides Mozilla's, mounted read-only as their SSL_CERT_FILE.")  # fmt: skip
    _env_argument(parser, "--runner-ca-bundle-key", ENV_RUNNER_CA_BUNDLE_KEY, default="ca.crt",
                  metavar="KEY", help="Key of that ConfigMap.")  # fmt: skip
    parser.add_argument(
        "--liveness", type=int, default=8081, metavar="PORT",
        help="Port of /healthz, /readyz and /metrics (0 = none).",
    )  # fmt: skip
    parser.add_argument(
        "--liveness-host", default="0.0.0.0", help="Address the probe port binds to."
    )
    parser.add_argument(
        "--leader-election", action=argparse.BooleanOptionalAction, default=True,
        help="Run only while holding a Lease, so that several replicas are safe.",
    )  # fmt: skip
    _env_argument(parser, "--lease-namespace", "POD_NAMESPACE", default="default",
                  help="Namespace of the Lease.")  # fmt: skip
    parser.add_argument(
        "--lease-seconds", type=int, default=30,
        help="How long a silent leader keeps the Lease before a standby takes over.",
    )  # fmt: skip
    parser.add_argument(
        "--renew-seconds", type=float, default=10.0, help="How often the leader renews."
    )
    parser.add_argument(
        "--resync-seconds", type=float, default=RESYNC_SECONDS,
        help="How often the children are listed again to repair what was deleted or edited "
             "behind the operator's back (Deployments are watched and repaired at once too; "
             "0 = never).",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", choices=["plain", "json"], default="plain", help="Log line format."
    )


class Probes:
    """Liveness, readiness and metrics over HTTP."""

    def __init__(self) -> None:
        self.kopf_ready: asyncio.Event | None = None
        self.leading = False
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"alive": True, "leading": self.leading})

    async def _readyz(self, _: web.Request) -> web.Response:
        ready = not self.leading or (self.kopf_ready is not None and self.kopf_ready.is_set())
        body = {"ready": ready, "leading": self.leading}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def run(args: argparse.Namespace) -> int:
    settings = OperatorSettings(
        image=args.image, image_pull_policy=args.image_pull_policy,
        runner_resources=args.runner_resources, onnx_resources=args.onnx_resources,
        runner_otlp_endpoint=args.runner_otlp_endpoint,
        runner_otlp_protocol=args.runner_otlp_protocol,
        runner_otel_service_name=args.runner_otel_service_name,
        runner_otel_resource_attributes=args.runner_otel_resource_attributes,
        runner_ca_bundle_config_map=args.runner_ca_bundle_config_map,
        runner_ca_bundle_key=args.runner_ca_bundle_key,
    )  # fmt: skip
    probes = Probes()
    if args.liveness:
        await probes.start(args.liveness_host, args.liveness)
    elector: LeaseElector | None = None
    kube: KubeClient | None = None
    if args.leader_election:
        identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        kube = await KubeClient.from_environment()
        elector = LeaseElector(
            kube,
            namespace=args.lease_namespace,
            name=LEASE_NAME,
            identity=identity,
            lease_seconds=args.lease_seconds,
            renew_seconds=args.renew_seconds,
            retry_seconds=min(2.0, args.renew_seconds),
        )
    try:
        if elector is not None:
            await elector.acquire()
        probes.leading = True
        return await _run_kopf(args, settings, probes, elector)
    finally:
        if elector is not None:
            await elector.release()
        if kube is not None:
            await kube.aclose()
        await probes.stop()


async def _run_kopf(
    args: argparse.Namespace,
    settings: OperatorSettings,
    probes: Probes,
    elector: LeaseElector | None,
) -> int:
    registry = kopf.OperatorRegistry()
    state = OperatorState(
        settings=settings, namespaces=tuple(args.namespace), resync_seconds=args.resync_seconds
    )
    register(registry, state)
    ready = asyncio.Event()
    stop = asyncio.Event()
    probes.kopf_ready = ready
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=True,
            ready_flag=ready,
            stop_flag=stop,
        )
    )
    keeper = asyncio.create_task(elector.keep()) if elector is not None else None
    waiting = {operator} | ({keeper} if keeper else set())
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if keeper is not None and keeper in done:
        stop.set()  # lost the Lease: stop handling at once, let the Deployment restart us
        with contextlib.suppress(Exception):
            await operator
        exc = keeper.exception()
        logger.error("%s; exiting", exc if isinstance(exc, LeadershipLost) else "leader loop ended")
        return 1
    if keeper is not None:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    operator.result()
    return 0


def main(args: argparse.Namespace) -> int:
    if args.log_format == "json":
        kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="k8s")
    # kopf logs every handled event at INFO ("Handler ... succeeded"): thousands of lines
    # per minute at scale, and no news. Its warnings and errors still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    return asyncio.run(run(args))
