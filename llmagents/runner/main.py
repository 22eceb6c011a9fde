"""``llmagents runner``: the main container of an agent's pod.

Wires the ``Runner`` to the cluster: reads ``runner.yaml`` from the ConfigMap the operator
rendered (``LLMAGENTS_CONFIG_MAP``), keys from the environment, checkpoints to
``<agent>-checkpoint``, results to ``<agent>-results-N``, status to its LLMAgent, fleet health
from its ProviderPool, metrics on the metrics port. Then it works until the task list ends
(and waits there, reporting Completed, until the operator scales it to zero) or, in gateway
mode, until it is stopped. SIGTERM writes a final checkpoint and status within ``--grace``.

Addresses: on the project's shared test host the process kubelet gives each pod its own
loopback address in ``LLMAGENTS_POD_IP``, and the runner binds there. In a real pod the
gateway binds 127.0.0.1 (only the pod's own containers may call it) and the metrics port
every address of the pod's network namespace, so that Prometheus can scrape it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop
import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest
from pydantic import ValidationError

from llmagents.api.runner_config import (
    CONFIG_KEY,
    ENV_AGENT,
    ENV_CONFIG_MAP,
    ENV_NAMESPACE,
    ENV_STATE_DIR,
    RunnerConfig,
    WorkMode,
    config_map_name,
    results_config_map_names,
)
from llmagents.api.status import API_VERSION, LLMAgentStatus, RunnerAgentStatus, RunnerPhase
from llmagents.errors import ConfigError
from llmagents.events import EventRecorder
from llmagents.kube import KubeClient, KubeError, config_map_path, custom_path
from llmagents.retrying import Backoff
from llmagents.runner import otel
from llmagents.runner.checkpoint import CheckpointError, StoreUnavailable, corrupt_conditions
from llmagents.runner.configmap_store import ConfigMapCheckpointStore
from llmagents.runner.events import CONTROLLER, KubeEventSink, instance_name
from llmagents.runner.fleet import FleetBreaker, read_pool, watch_pool
from llmagents.runner.gateway import Gateway
from llmagents.runner.lifecycle import Runner
from llmagents.runner.metrics import RunnerMetrics
from llmagents.runner.results import ConfigMapResultStore
from llmagents.runner.secrets import Redactor, api_keys, install_log_redaction
from llmagents.runner.spend_journal import FILE_NAME as JOURNAL_FILE
from llmagents.runner.status import AgentStatusSink, RunnerReport

T = TypeVar("T")
logger = logging.getLogger(__name__)

ENV_POD_IP = "LLMAGENTS_POD_IP"
"""The pod's own loopback address, set by the process kubelet on the shared test host."""
_START_RETRY = Backoff(first=0.5, cap=10.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", default=None,
        help="Kubeconfig to use; default: in-cluster credentials, else $KUBECONFIG.",
    )  # fmt: skip
    parser.add_argument(
        "--host", default=None,
        help=f"Address of the gateway (default ${ENV_POD_IP}, else 127.0.0.1).",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-host", default=None,
        help=f"Address of /metrics, /healthz, /readyz (default ${ENV_POD_IP}, else 0.0.0.0).",
    )  # fmt: skip
    parser.add_argument(
        "--grace", type=float, default=20.0,
        help="Seconds for the final checkpoint and status on SIGTERM (below the pod's grace).",
    )  # fmt: skip
    parser.add_argument(
        "--status-interval", type=float, default=5.0,
        help="Least seconds between two status writes (urgent changes excepted).",
    )  # fmt: skip


async def _retry(what: str, action: Callable[[], object], stop: asyncio.Event) -> object:
    """Run ``action`` (a coroutine factory) until it succeeds or ``stop`` is set."""
    failures = 0
    while True:
        try:
            return await action()  # type: ignore[misc]
        except (KubeError, StoreUnavailable) as error:
            delay = _START_RETRY.delay(failures)
            failures += 1
            logger.warning("%s failed (retrying in %gs): %s", what, delay, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                raise


async def _load_config(kube: KubeClient, namespace: str, name: str) -> RunnerConfig:
    config_map = await kube.get(config_map_path(namespace, name))
    text = (config_map.get("data") or {}).get(CONFIG_KEY)
    if text is None:
        raise ConfigError(f"ConfigMap {namespace}/{name} has no {CONFIG_KEY}")
    # A configuration rendered by an older operator can break a rule this runner added;
    # that is a Failed status saying which, not a traceback.
    try:
        return RunnerConfig.from_yaml(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"ConfigMap {name} does not validate: {problems}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"ConfigMap {name} is not YAML: {error}") from None


async def _previous_status(kube: KubeClient, namespace: str, name: str) -> LLMAgentStatus | None:
    try:
        agent = await kube.get(custom_path(API_VERSION, namespace, "llmagents", name))
        return LLMAgentStatus.model_validate(agent.get("status") or {})
    except (KubeError, ValueError) as error:
        logger.info("agent %s: previous status not read (%s); trusting the checkpoint", name, error)
        return None


def _metrics_app(metrics: RunnerMetrics, ready: Callable[[], bool]) -> web.Application:
    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})  # fmt: skip

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    app = web.Application()
    app.add_routes([web.get("/metrics", scrape), web.get("/healthz", healthz),
                    web.get("/readyz", readyz)])  # fmt: skip
    return app


async def run(args: argparse.Namespace) -> int:
    env = os.environ
    missing = [name for name in (ENV_AGENT, ENV_NAMESPACE) if not env.get(name)]
    if missing:
        logger.error(
            "the runner needs %s in its environment (the operator's pod spec sets "
            "them); is it running outside its pod?",
            " and ".join(missing),
        )
        return 2
    agent, namespace = env[ENV_AGENT], env[ENV_NAMESPACE]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kube = await KubeClient.from_environment(kubeconfig=args.kubeconfig)
    status_sink = AgentStatusSink(kube, namespace=namespace, name=agent)
    started: list[web.AppRunner] = []
    try:
        name = env.get(ENV_CONFIG_MAP) or config_map_name(agent)
        try:
            config = await _retry(f"reading ConfigMap {name}",
                                  lambda: _load_config(kube, namespace, name), stop)  # fmt: skip
        except ConfigError as error:
            logger.error("agent %s: cannot start: %s", agent, error)
            failed = RunnerAgentStatus(runner_phase=RunnerPhase.FAILED,
                                       message=f"cannot start: {error}"[:4096])  # fmt: skip
            with contextlib.suppress(KubeError):
                await status_sink.write(RunnerReport(failed))
            return 1
        assert isinstance(config, RunnerConfig)
        config = config.with_env(env)
        keys = api_keys(config, env)
        redactor = Redactor(keys.values())
        install_log_redaction(redactor)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        metrics = RunnerMetrics(agent)
        state_dir = env.get(ENV_STATE_DIR)
        if not state_dir:
            logger.warning("agent %s: no %s: a kill loses the spend of calls answered since "
                           "the last checkpoint", agent, ENV_STATE_DIR)  # fmt: skip
        tracer, tracing_refused = None, None
        try:
            tracer = otel.from_environment(
                agent=agent, namespace=namespace, redact=redactor,
                capture_content=bool(config.pool.tracing
                                     and config.pool.tracing.capture_prompt_content),
            )  # fmt: skip
        except otel.TracingRefused as refused:
            # Work goes on without traces; the agent's status says why (TracingMisconfigured).
            logger.error("agent %s: traces are not exported: %s", agent, refused)
            tracing_refused = str(refused)
        try:
            runner = Runner(
                config, api_keys=keys, metrics=metrics, redactor=redactor,
                store=ConfigMapCheckpointStore(kube, owner=config.agent,
                                               name=config.checkpoint_config_map),
                status_sink=status_sink,
                results=ConfigMapResultStore(kube, owner=config.agent,
                                             names=results_config_map_names(agent)),
                status_interval=args.status_interval,
                spend_journal=Path(state_dir) / JOURNAL_FILE if state_dir else None,
                events=EventRecorder(KubeEventSink(kube), controller=CONTROLLER,
                                     instance=instance_name(), redact=redactor),
                tracer=tracer,
                tracing_refused=tracing_refused,
            )  # fmt: skip
        except ConfigError as error:
            logger.error("agent %s: %s", agent, redactor(str(error)))
            failed = RunnerAgentStatus(
                runner_phase=RunnerPhase.FAILED, message=redactor(str(error))
            )
            with contextlib.suppress(KubeError):
                await status_sink.write(RunnerReport(failed))
            return 1
        pod_ip = env.get(ENV_POD_IP)
        site = web.AppRunner(_metrics_app(metrics, lambda: runner.accepting), access_log=None)
        await site.setup()
        started.append(site)
        await web.TCPSite(
            site, args.metrics_host or pod_ip or "0.0.0.0", config.ports.metrics
        ).start()
        previous = await _previous_status(kube, namespace, agent)
        await _retry("claiming the checkpoint",
                     lambda: runner.start(previous_status=previous), stop)  # fmt: skip
        return await _work(args, runner, kube, config, stop, pod_ip)
    except (KubeError, StoreUnavailable, CheckpointError) as error:
        if stop.is_set():
            logger.info("agent %s: stopped before the runner started", agent)
            return 0
        logger.error("agent %s: cannot start: %s", agent, error)
        failed = RunnerAgentStatus(
            runner_phase=RunnerPhase.FAILED, message=f"cannot start: {error}"
        )
        with contextlib.suppress(KubeError):
            await status_sink.write(RunnerReport(failed, corrupt_conditions(error)))
        return 1
    finally:
        for site in started:
            await site.cleanup()
        await kube.aclose()


async def _work(
    args: argparse.Namespace,
    runner: Runner,
    kube: KubeClient,
    config: RunnerConfig,
    stop: asyncio.Event,
    pod_ip: str | None,
) -> int:
    fleet = FleetBreaker(runner.engine.manager, agent=runner.agent)
    await read_pool(kube, namespace=config.agent.namespace, pool=config.pool_name, fleet=fleet)
    watcher = asyncio.create_task(
        watch_pool(kube, namespace=config.agent.namespace, pool=config.pool_name, fleet=fleet,
                   stop=runner.work_stop)
    )  # fmt: skip
    gateway: Gateway | None = None
    code = 0
    try:
        if config.mode is WorkMode.GATEWAY:
            gateway = Gateway(runner)
            await gateway.start(args.host or pod_ip or "127.0.0.1", config.ports.gateway)
        else:
            work = asyncio.create_task(runner.run_tasks())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            runner.work_stop.set()
            # A call in flight may take a provider's whole timeout: give it a moment, then
            # cancel it (its spend was not charged, its task not marked done) to keep the
            # grace period for the final checkpoint.
            await asyncio.wait({work}, timeout=min(5.0, args.grace / 3))
            work.cancel()
            try:
                await work
            except asyncio.CancelledError:
                logger.info("agent %s: the task in flight was cancelled", runner.agent)
            except Exception:
                logger.exception("agent %s: the task loop failed", runner.agent)
                code = 1
        # Done, stopped by maxRuntime or fenced: stay up, reporting, until the pod is stopped;
        # exiting would only make the kubelet start the runner again.
        await stop.wait()
    finally:
        if gateway is not None:
            await gateway.stop()
        await runner.shutdown(args.grace)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return code


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Runs ``main`` on uvloop, whose C transports and loop cut the gateway's CPU per call by
    about an eighth: the gateway is on the path of every model call (``bench/README.md``)."""
    return uvloop.run(main)


def main(args: argparse.Namespace) -> int:
    return run_event_loop(run(args))
