"""Runners against real fake providers on loopback, with file and memory edges."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from llmagents.api.runner_config import RunnerConfig
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.gateway import Gateway
from llmagents.runner.lifecycle import Runner
from llmagents.runner.results import FileResultStore
from llmagents.runner.status import MemoryStatusSink
from llmagents.testing.fake_providers import FakeAnthropic, FakeGemini, FakeOpenAI

PRIMARY_KEY = "sk-primary-PLANTED-0123456789"
FALLBACK_KEY = "sk-fallback-0123456789"
PRICES = {"inputPerMillion": 1000.0, "outputPerMillion": 2000.0}


@dataclass
class Fakes:
    primary: FakeOpenAI
    fallback: FakeOpenAI
    local: FakeOpenAI


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with (
        FakeOpenAI(api_key=PRIMARY_KEY) as primary,
        FakeOpenAI(api_key=FALLBACK_KEY) as fallback,
        FakeOpenAI(api_key=None, models=["smollm2"]) as local,
    ):
        yield Fakes(primary, fallback, local)


def runner_config(
    providers: list[dict[str, Any]], *, pool: dict[str, Any] | None = None, **fields: Any
) -> RunnerConfig:
    """The configuration of agent ``ns/agent-a``'s runner over ``providers``: a gateway
    (``fields`` add to or replace the document's: ``mode``, ``tasks``, ``budget``...; a None
    is left out), each provider's key in its own variable."""
    document: dict[str, Any] = {
        "agent": {"name": "agent-a", "namespace": "ns", "uid": "uid-1"},
        "poolName": "pool",
        "pool": {"providers": providers, **(pool or {})},
        "mode": "gateway",
        "checkpointInterval": "30s",
        "checkpointConfigMap": "agent-a-checkpoint",
        "apiKeyEnv": {p["name"]: f"K{i}" for i, p in enumerate(providers, 1) if "secretRef" in p},
        **fields,
    }
    return RunnerConfig.model_validate({k: v for k, v in document.items() if v is not None})


def config(
    fakes: Fakes,
    *,
    tasks: int | list[dict[str, Any]] | None = 3,
    budget: dict[str, Any] | None = None,
    local: bool = False,
    pool: dict[str, Any] | None = None,
    **fields: Any,
) -> RunnerConfig:
    """A runner configuration over the fakes: primary (priority 1), fallback, optionally a
    free local provider of type onnx."""
    providers: list[dict[str, Any]] = [
        {"name": "primary", "type": "openai", "model": "gpt-4o-mini", "priority": 1,
         "baseURL": fakes.primary.base_url, "secretRef": {"name": "keys"}, "pricing": PRICES,
         "timeout": "5s", "maxRetries": 0},
        {"name": "fallback", "type": "openai", "model": "gpt-4.1", "priority": 2,
         "baseURL": fakes.fallback.base_url, "secretRef": {"name": "keys"}, "pricing": PRICES,
         "timeout": "5s", "maxRetries": 0},
    ]  # fmt: skip
    if local:
        providers.append({"name": "local", "type": "onnx", "model": "smollm2", "priority": 3,
                          "timeout": "5s", "maxRetries": 0})  # fmt: skip
    if isinstance(tasks, int):
        tasks = [{"name": f"task-{i}", "prompt": f"Question number {i}?"} for i in range(tasks)]
    document: dict[str, Any] = {
        "mode": "tasks" if tasks is not None else "gateway",
        "tasks": tasks,
        "budget": budget,
        "onnxUrl": fakes.local.url if local else None,
        "apiKeyEnv": {"primary": "KEY_PRIMARY", "fallback": "KEY_FALLBACK"},
        **fields,
    }
    resilience = {"retry": {"initialDelay": "10ms", "jitter": 0},
                  "circuitBreaker": {"maxFailures": 2, "recoveryTime": "30s"}}  # fmt: skip
    return runner_config(providers, pool={**resilience, **(pool or {})}, **document)


KEYS = {"primary": PRIMARY_KEY, "fallback": FALLBACK_KEY}


@dataclass
class Edges:
    store: FileCheckpointStore
    status: MemoryStatusSink
    results: FileResultStore

    def runner(
        self, cfg: RunnerConfig, *, api_keys: Mapping[str, str] = KEYS, **options: Any
    ) -> Runner:
        options.setdefault("task_retry_delays", (0.01,))
        return Runner(cfg, api_keys=dict(api_keys), store=self.store, status_sink=self.status,
                      results=self.results, **options)  # fmt: skip


@pytest.fixture
def edges(tmp_path: Path) -> Edges:
    return Edges(
        FileCheckpointStore(tmp_path / "checkpoint.json"),
        MemoryStatusSink(),
        FileResultStore(tmp_path / "results.jsonl"),
    )


@asynccontextmanager
async def serving(runner: Runner) -> AsyncIterator[str]:
    """Starts ``runner`` and its gateway on a free loopback port, yields the gateway's origin
    (``http://127.0.0.1:<port>``), and stops both at the end, failure included."""
    await runner.start()
    gateway = Gateway(runner)
    await gateway.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{gateway.port}"
    finally:
        await gateway.stop()
        await runner.shutdown(5)


@pytest.fixture
async def served(fakes: Fakes, edges: Edges) -> AsyncIterator[tuple[Runner, str]]:
    """A gateway-mode runner over the fakes (budget 100 USD) and the origin of its gateway:
    OpenAI's SDK takes ``origin + "/v1"`` as its base URL, Anthropic's adds ``/v1`` itself."""
    runner = edges.runner(config(fakes, tasks=None, budget={"limit": 100}))
    async with serving(runner) as origin:
        yield runner, origin


def openai_client(origin: str) -> openai.AsyncOpenAI:
    """OpenAI's own client, pointed at the gateway at ``origin``."""
    return openai.AsyncOpenAI(base_url=f"{origin}/v1", api_key="llmagents-gateway", max_retries=0)


POD_KEY = "sk-test-0123456789"


@dataclass
class Pod:
    """A gateway in front of one fake of each protocol: claude (Anthropic, priority 1), gpt
    (OpenAI-compatible, without vision) and gemini; ``url`` is OpenAI's base URL (with
    ``/v1``). Every failure opens a breaker, so that a provider down stays skipped."""

    runner: Runner
    url: str
    claude: FakeAnthropic
    gpt: FakeOpenAI
    gemini: FakeGemini

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key="llmagents-gateway", max_retries=0)

    def down(self, *fakes: Any) -> None:
        for fake in fakes:
            fake.core.update({"outage": True})

    def up(self, *fakes: Any) -> None:
        for fake in fakes:
            fake.core.update({"outage": False})


@pytest.fixture
async def pod(edges: Edges) -> AsyncIterator[Pod]:
    async with (
        FakeAnthropic(api_key=POD_KEY) as claude,
        FakeOpenAI(api_key=POD_KEY) as gpt,
        FakeGemini(api_key=POD_KEY) as gemini,
    ):
        common = {"secretRef": {"name": "keys"}, "timeout": "5s", "maxRetries": 0,
                  "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}}  # fmt: skip
        providers = [
            {"name": "claude", "type": "anthropic", "model": "claude-haiku-4-5",
             "priority": 1, "baseURL": claude.base_url, **common},
            {"name": "gpt", "type": "openai", "model": "gpt-4.1", "priority": 2,
             "baseURL": gpt.base_url, "capabilities": {"vision": False}, **common},
            {"name": "gemini", "type": "gemini", "model": "gemini-2.5-flash",
             "priority": 3, "baseURL": gemini.base_url, **common},
        ]  # fmt: skip
        config = runner_config(
            providers,
            # Every failure opens the breaker, so that a provider down stays skipped.
            pool={"models": {"smart": ["claude", "gemini"]},
                  "circuitBreaker": {"maxFailures": 1, "recoveryTime": "1ms"}},
            budget={"limit": 100},
        )  # fmt: skip
        runner = edges.runner(config, api_keys=dict.fromkeys(("claude", "gpt", "gemini"), POD_KEY))
        async with serving(runner) as origin:
            yield Pod(runner, f"{origin}/v1", claude, gpt, gemini)
