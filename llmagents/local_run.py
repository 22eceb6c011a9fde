"""``llmagents run -f FILE``: run a manifest's agent on this machine, with no Kubernetes at all.

It is how a user develops an agent's tasks and rehearses fallback settings (against
``llmagents fake-provider``) before deploying: the manifest's LLMAgent and its ProviderPool
become the very ``RunnerConfig`` the operator would render (``operator.builders``), and the
pod's ``Runner`` runs it with local edges: checkpoints in a file (``FileCheckpointStore``),
the spend journal beside it, results in a JSON-lines file, and status printed as the ``kubectl get llmagents`` table
(``local_table``). Ctrl-C writes a final checkpoint; running the same command again resumes
(completed tasks are not run again, spend and budget carry on). ``--reset`` starts afresh.

API keys, first found wins, per provider: ``LLMAGENTS_API_KEY_<NAME>`` (the runner's own
variable), the vendor's usual variable by provider type (``ANTHROPIC_API_KEY``,
``GEMINI_API_KEY``, ``OPENAI_API_KEY``), then a Secret in the manifest under the provider's
``secretRef``. A pool with an ``onnx`` provider and no ``baseURL`` gets the ONNX sidecar
(``llmagents onnx-server``, SmolLM2 unless ``--onnx-model-dir``) as a child process on a
free loopback port, or the server ``--onnx-url`` names.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from llmagents.api.pool import ProviderType
from llmagents.api.runner_config import RunnerConfig, WorkMode, api_key_env
from llmagents.api.status import API_VERSION, RunnerPhase
from llmagents.errors import ConfigError
from llmagents.local_table import Table, agent_row
from llmagents.operator.builders import runner_config
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.settings import OperatorSettings
from llmagents.providers import check_api_key
from llmagents.runner.checkpoint import CheckpointError
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.gateway import Gateway
from llmagents.runner.lifecycle import Runner
from llmagents.runner.main import run_event_loop
from llmagents.runner.results import FileResultStore
from llmagents.runner.secrets import Redactor, install_log_redaction
from llmagents.runner.spend_journal import FILE_NAME as JOURNAL_FILE
from llmagents.runner.status import RunnerReport
from llmagents.runner.tasks import LoopEnd

logger = logging.getLogger(__name__)

VENDOR_KEY_ENV = {
    ProviderType.ANTHROPIC: "ANTHROPIC_API_KEY",
    ProviderType.GEMINI: "GEMINI_API_KEY",
    ProviderType.OPENAI: "OPENAI_API_KEY",
}
"""The variable each vendor's own tools read its key from."""
ONNX_READY_TIMEOUT = 300.0
"""Seconds the local model may take to load (a first run also converts it)."""
EXIT_INTERRUPTED = 130
EXIT_BUDGET_SPENT = 3
"""A ``total`` budget with ``onExhausted: stop`` is spent: no task can run again."""


@dataclass(frozen=True, slots=True)
class LocalAgent:
    """An LLMAgent of a manifest with its ProviderPool and the manifest's Secrets."""

    agent: AgentObject
    pool: PoolObject
    secrets: Mapping[str, Mapping[str, str]]
    """Secret name -> key -> value, from the agent's namespace."""


def _namespace(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "default")


def _local_uid(namespace: str, name: str) -> str:
    # Stable across runs, so that the checkpoint of an earlier run is this agent's.
    return "local-" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:16]


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return data


def load_manifest(text: str, *, agent_name: str | None = None) -> LocalAgent:
    """The LLMAgent (the one named, or the only one) of a multi-document manifest, its pool
    and Secrets; ``ConfigError`` says what is missing or invalid."""
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    agents = [
        d for d in docs
        if d.get("kind") == "LLMAgent" and d.get("apiVersion") == API_VERSION
        and (agent_name is None or (d.get("metadata") or {}).get("name") == agent_name)
    ]  # fmt: skip
    if len(agents) != 1:
        which = f"named {agent_name!r}" if agent_name else "(pass --agent NAME to pick one)"
        raise ConfigError(f"the manifest has {len(agents)} LLMAgents {which}; need exactly one")
    body = agents[0]
    namespace = _namespace(body)
    meta = {**(body.get("metadata") or {}), "namespace": namespace}
    meta.setdefault("uid", _local_uid(namespace, str(meta.get("name"))))
    agent = AgentObject.from_body({**body, "metadata": meta})
    if agent.spec is None:
        raise ConfigError(f"LLMAgent {agent.name}: {agent.error}")
    pools = [
        d for d in docs
        if d.get("kind") == "ProviderPool" and _namespace(d) == namespace
        and (d.get("metadata") or {}).get("name") == agent.pool_name
    ]  # fmt: skip
    if not pools:
        raise ConfigError(
            f"LLMAgent {agent.name} uses ProviderPool {agent.pool_name!r}, which is not in "
            "the manifest; put both in one file (separated by ---)"
        )
    pool = PoolObject.from_body(
        {**pools[0], "metadata": {**pools[0]["metadata"], "namespace": namespace}}
    )
    if pool.spec is None:
        raise ConfigError(f"ProviderPool {pool.name}: {pool.error}")
    secrets = {
        str(d["metadata"]["name"]): _secret_data(d)
        for d in docs
        if d.get("kind") == "Secret" and _namespace(d) == namespace
    }
    return LocalAgent(agent, pool, secrets)


def local_keys(local: LocalAgent, environ: Mapping[str, str]) -> dict[str, str | None]:
    """Provider name -> API key (see the module docstring for the order); None = no key.

    Surrounding whitespace is dropped, as the runner does; a key holding a character that
    cannot go in a header is an ``InvalidApiKey`` naming the variable or Secret it came from.
    """
    assert local.pool.spec is not None
    keys: dict[str, str | None] = {}
    for provider in local.pool.spec.providers:
        ref = provider.secret_ref
        if ref is None:
            continue
        vendor = VENDOR_KEY_ENV.get(provider.type)
        sources = [
            (f"environment variable {api_key_env(provider.name)}",
             environ.get(api_key_env(provider.name))),
            (f"environment variable {vendor}", environ.get(vendor) if vendor else None),
            (f"the manifest's Secret {ref.name!r}, key {ref.key!r}",
             local.secrets.get(ref.name, {}).get(ref.key)),
        ]  # fmt: skip
        source, value = next(((s, v.strip()) for s, v in sources if v and v.strip()), ("", ""))
        if value:
            check_api_key(value, provider=provider.name, secret_ref=ref, source=source)
        keys[provider.name] = value or None
    return keys


def needs_sidecar(config: RunnerConfig) -> bool:
    return any(p.type is ProviderType.ONNX and p.base_url is None for p in config.pool.providers)


def default_state_dir(local: LocalAgent) -> Path:
    root = os.environ.get("LLMAGENTS_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "llmagents"
    )
    return Path(root) / "run" / local.agent.namespace / local.agent.name


class TableSink:
    """A ``StatusSink`` that prints a ``kubectl get llmagents -w`` row per visible change."""

    def __init__(self, agent: AgentObject, providers: list[str], *, quiet: bool = False) -> None:
        self.agent = agent
        self.quiet = quiet
        """Only remember rows; ``show(force=True)`` prints the latest."""
        self.table = Table(name_width=len(agent.name),
                           provider_width=max(map(len, providers), default=0))  # fmt: skip
        self.latest: dict[str, str] | None = None
        self._printed: dict[str, str] | None = None

    async def write(self, report: RunnerReport) -> None:
        self.latest = agent_row(self.agent, report.status, datetime.now(UTC))
        if not self.quiet:
            self.show()

    def show(self, *, force: bool = False) -> None:
        """Print the latest row if more than its age changed (or ``force``)."""
        row = self.latest
        if row is None:
            return
        if self._printed is None:
            print(self.table.header())
        elif not force and {**row, "AGE": ""} == {**self._printed, "AGE": ""}:
            return
        print(self.table.row(row), flush=True)
        self._printed = row


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sidecar:
    """``llmagents onnx-server`` as a child process on a free loopback port."""

    def __init__(self, log: Path, model_dir: Path | None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "llmagents.cli", "onnx-server",
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        if model_dir is not None:
            argv += ["--model-dir", str(model_dir)]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            # Its own session: Ctrl-C reaches us only, and we stop it after the checkpoint.
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.log = log

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        if self.proc.poll() is not None:
            raise ConfigError(
                f"the ONNX sidecar exited with {self.proc.returncode}; see {self.log}"
            )
        try:
            async with http.get(f"{self.url}/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def wait_ready(self, stop: asyncio.Event, timeout: float) -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            return await self._wait_ready(http, stop, timeout)

    async def _wait_ready(
        self, http: aiohttp.ClientSession, stop: asyncio.Event, timeout: float
    ) -> bool:
        deadline = time.monotonic() + timeout
        while not await self.ready(http):
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the ONNX sidecar was not ready in {timeout:.0f} s; see {self.log}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if stop.is_set():
                return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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
    sidecar: Sidecar | None = None
    if needs_sidecar(config):
        if args.onnx_url is None:
            sidecar = Sidecar(state / "onnx.log", args.onnx_model_dir)
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
