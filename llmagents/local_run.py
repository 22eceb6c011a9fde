"""``llmagents run -f FILE``: run a manifest's agent on this machine, with no Kubernetes at all.

It is how a user develops an agent's tasks and rehearses fallback settings (against
``llmagents fake-provider``) before deploying: the manifest's LLMAgent and its ProviderPool
become the very ``RunnerConfig`` the operator would render (``operator.builders``), and the
pod's ``Runner`` runs it with local edges: checkpoints in a file (``FileCheckpointStore``),
the spend journal beside it, results in a JSON-lines file, and status printed as the ``kubectl get llmagents`` table
(``local_table``). Ctrl-C writes a final checkpoint; running the same command again resumes
(completed tasks are not run again, spend and budget carry on). ``--reset`` starts afresh.

The manifest and the API keys are read by ``local_manifest``. A pool with an ``onnx``
provider and no ``baseURL`` gets the ONNX sidecar (``llmagents onnx-server``, SmolLM2 unless
``--onnx-model-dir``) as a child process (``local_sidecar``), or the server ``--onnx-url``
names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

import yaml

from llmagents.api.runner_config import RunnerConfig, WorkMode
from llmagents.api.status import RunnerPhase
from llmagents.cache import cache_root
from llmagents.errors import ConfigError
from llmagents.local_manifest import LocalAgent, load_manifest, local_keys
from llmagents.local_sidecar import SidecarProcess, needs_sidecar
from llmagents.local_table import TableSink
from llmagents.operator.builders import runner_config
from llmagents.operator.settings import OperatorSettings
from llmagents.runner.checkpoint import CheckpointError
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.gateway import Gateway
from llmagents.runner.lifecycle import Runner
from llmagents.runner.main import run_event_loop
from llmagents.runner.results import FileResultStore
from llmagents.runner.secrets import Redactor, install_log_redaction
from llmagents.runner.spend_journal import FILE_NAME as JOURNAL_FILE
from llmagents.runner.tasks import LoopEnd

logger = logging.getLogger(__name__)

ONNX_READY_TIMEOUT = 300.0
"""Seconds the local model may take to load (a first run also converts it)."""
EXIT_INTERRUPTED = 130
EXIT_BUDGET_SPENT = 3
"""A ``total`` budget with ``onExhausted: stop`` is spent: no task can run again."""


def default_state_dir(local: LocalAgent) -> Path:
    return cache_root() / "run" / local.agent.namespace / local.agent.name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        type=Path,
        help="Manifest with the LLMAgent, its ProviderPool and optionally Secrets.",
    )
    parser.add_argument("--agent", default=None, help="Which LLMAgent, if the file has several.")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="Checkpoint and results directory (default "
                        "~/.cache/llmagents/run/<namespace>/<agent>).")  # fmt: skip
    parser.add_argument(
        "--reset",
        action="store_true",
        help="Forget the checkpoint and results of earlier runs first.",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="Print the table once at the end instead of a row per change.",
    )
    parser.add_argument(
        "--onnx-url", default=None, help="Use this ONNX sidecar instead of starting one."
    )
    parser.add_argument(
        "--onnx-model-dir",
        type=Path,
        default=None,
        help="Model directory for the sidecar started here (default SmolLM2).",
    )
    parser.add_argument(
        "--gateway-port",
        type=int,
        default=None,
        help="Port of the local gateway (agents with their own container); 0 picks a free one.",
    )


def main(args: argparse.Namespace) -> int:
    try:
        local = load_manifest(args.filename.read_text(), agent_name=args.agent)
    except (OSError, ConfigError, yaml.YAMLError) as error:
        print(f"llmagents run: {error}", file=sys.stderr)
        return 2
    return run_event_loop(run(local, args))


async def run(local: LocalAgent, args: argparse.Namespace) -> int:
    """Run the agent until its tasks end (or, with a gateway, until stopped); see main."""
    state = args.state_dir or default_state_dir(local)
    if args.reset:
        shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _run(local, args, state, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _run(
    local: LocalAgent, args: argparse.Namespace, state: Path, stop: asyncio.Event
) -> int:
    try:
        keys = local_keys(local, os.environ)
    except ConfigError as error:
        print(f"llmagents run: {error}", file=sys.stderr)
        return 2
    config = runner_config(local.agent, local.pool, OperatorSettings())
    sidecar: SidecarProcess | None = None
    if needs_sidecar(config):
        if args.onnx_url is None:
            sidecar = SidecarProcess(state / "onnx.log", args.onnx_model_dir)
        onnx_url = args.onnx_url if sidecar is None else sidecar.url
        config = config.model_copy(update={"onnx_url": onnx_url})
    redactor = Redactor(keys.values())
    install_log_redaction(redactor)
    sink = TableSink(local.agent, [p.name for p in config.pool.providers], quiet=args.once)
    try:
        runner = Runner(
            config, api_keys=keys, redactor=redactor, status_interval=1.0,
            store=FileCheckpointStore(state / "checkpoint.json"), status_sink=sink,
            results=FileResultStore(state / "results.jsonl"),
            spend_journal=state / JOURNAL_FILE,
        )  # fmt: skip
    except ConfigError as error:
        print(f"llmagents run: {redactor(str(error))}", file=sys.stderr)
        return 2
    print(f"agent {local.agent.name}: state in {state}", file=sys.stderr)
    try:
        if sidecar is not None:
            print(f"starting the local model (log {sidecar.log})", file=sys.stderr)
            if not await sidecar.wait_ready(stop, ONNX_READY_TIMEOUT):
                return EXIT_INTERRUPTED
        await runner.start()
        code = await _work(runner, config, stop, args)
        await runner.shutdown(10.0)
    except (ConfigError, CheckpointError) as error:
        print(f"llmagents run: {redactor(str(error))}", file=sys.stderr)
        await runner.close()
        return 2
    finally:
        if sidecar is not None:
            sidecar.stop()
    if args.once:
        sink.show(force=True)
    _summary(state, runner, code)
    return code


async def _work(
    runner: Runner, config: RunnerConfig, stop: asyncio.Event, args: argparse.Namespace
) -> int:
    if config.mode is WorkMode.GATEWAY:
        if runner.completion_saved.is_set():  # done in an earlier run: serve nothing paid
            print("llmagents run: the agent already reported its work done; --reset runs it "
                  "again", file=sys.stderr)  # fmt: skip
            return 0
        gateway = Gateway(runner)
        port = args.gateway_port if args.gateway_port is not None else config.ports.gateway
        await gateway.start("127.0.0.1", port)
        root = f"http://127.0.0.1:{gateway.port}"
        print(f"gateway at {root}/v1: run your agent with OPENAI_BASE_URL={root}/v1 "
              f"(or ANTHROPIC_BASE_URL={root} for Anthropic's SDKs); Ctrl-C stops, and so "
              f"does the agent's POST {root}/v1/agent/complete", file=sys.stderr)  # fmt: skip
        waits = {
            asyncio.create_task(stop.wait()),
            asyncio.create_task(runner.completion_saved.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await gateway.stop()  # answers the completion report in flight first
        return 0
    work = asyncio.create_task(runner.run_tasks())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not work.done():
        runner.work_stop.set()
        # The call in flight is not charged and its task not marked done: it runs again.
        await asyncio.wait({work}, timeout=3.0)
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return EXIT_INTERRUPTED
    if work.result() is LoopEnd.STOPPED:
        return EXIT_INTERRUPTED
    if work.result() is LoopEnd.BUDGET_SPENT:
        print(f"llmagents run: {runner.message}", file=sys.stderr)
        return EXIT_BUDGET_SPENT
    summary = runner.progress.summary(runner.tasks)
    return 1 if summary.failed else 0


def _summary(state: Path, runner: Runner, code: int) -> None:
    spend = runner.engine.manager.spend
    if code == EXIT_INTERRUPTED:
        print(f"stopped; checkpoint saved. Run the same command again to resume "
              f"(${spend.cost:.6f} spent so far).", file=sys.stderr)  # fmt: skip
        return
    if runner.phase is not RunnerPhase.COMPLETED:
        return
    if runner.completion is not None:
        print(f"{runner.message} (${spend.cost:.6f} spent in all)", file=sys.stderr)
        return
    results = state / "results.jsonl"
    latest: dict[str, dict[str, object]] = {}
    with contextlib.suppress(OSError):
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            latest[entry["task"]] = entry
    for spec in runner.tasks:
        entry = latest.get(spec.name)
        if entry is not None:
            text = entry.get("text") if entry["ok"] else f"FAILED: {entry.get('error')}"
            first = " ".join(str(text or "").split())[:100]
            print(f"  {spec.name} [{entry.get('provider') or '-'}] {first}", file=sys.stderr)
    print(f"results: {results} (${spend.cost:.6f} spent in all)", file=sys.stderr)
