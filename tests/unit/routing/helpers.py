"""Test doubles for the engine: a clock that tests move, pools, and scripted providers."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec
from llmagents.api.work import BudgetSpec
from llmagents.chat import Usage
from llmagents.errors import ProviderTimeout
from llmagents.routing import Attempt, EngineListener, ProviderManager
from llmagents.routing.breaker import Transition
from llmagents.routing.calls import AttemptRecord, Fallback

START_WALL = datetime(2025, 1, 31, 22, 0, tzinfo=UTC)


class FakeClock:
    """Monotonic and wall time that move only when a test (or a fake sleep) moves them."""

    def __init__(self, wall: datetime = START_WALL, monotonic: float = 1000.0) -> None:
        self.now = monotonic
        self._start = monotonic
        self._wall = wall
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self._wall + timedelta(seconds=self.now - self._start)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def provider(name: str, **fields: Any) -> dict[str, Any]:
    """A provider entry in wire form; remote unless ``type`` says onnx."""
    entry: dict[str, Any] = {"name": name, "type": "openai", "model": f"{name}-model"}
    entry.update(fields)
    if entry["type"] != "onnx":
        entry.setdefault("secretRef", {"name": f"{name}-key"})
    return entry


def pool(*providers: dict[str, Any], **fields: Any) -> ProviderPoolSpec:
    return ProviderPoolSpec.model_validate({"providers": list(providers), **fields})


def manager(
    spec: ProviderPoolSpec,
    clock: FakeClock,
    *,
    budget: dict[str, Any] | None = None,
    seed: int = 7,
    **kwargs: Any,
) -> ProviderManager:
    return ProviderManager(
        spec,
        budget=BudgetSpec.model_validate(budget) if budget is not None else None,
        clock=clock.monotonic,
        wall_clock=clock.wall,
        sleep=clock.sleep,
        rng=random.Random(seed),
        **kwargs,
    )


@dataclass
class Reply:
    """A provider's answer; ``usage`` None stands for a stream that has just begun."""

    text: str = "ok"
    usage: Usage | None = field(default_factory=lambda: Usage(100, 50))


@dataclass
class Slow:
    """An outcome that arrives after ``seconds`` of (fake) time."""

    seconds: float
    outcome: Any


class Scripted:
    """A provider call whose outcomes per provider are scripted; unscripted attempts succeed.

    Every attempt advances the clock by ``latency`` so that latencies are non-zero and exact;
    an outcome slower than the attempt's timeout becomes a timeout, as in a real adapter.
    """

    def __init__(
        self,
        clock: FakeClock,
        script: dict[str, list[Any]] | None = None,
        *,
        latency: float = 0.25,
    ) -> None:
        self.clock = clock
        self.script = {name: list(outcomes) for name, outcomes in (script or {}).items()}
        self.latency = latency
        self.attempts: list[Attempt] = []
        self.times: list[float] = []

    @property
    def providers(self) -> list[str]:
        return [a.provider.name for a in self.attempts]

    async def __call__(self, attempt: Attempt) -> Reply:
        self.attempts.append(attempt)
        self.times.append(self.clock.now)
        queue = self.script.get(attempt.provider.name)
        outcome: Any = queue.pop(0) if queue else Reply()
        delay = self.latency
        if isinstance(outcome, Slow):
            delay, outcome = outcome.seconds, outcome.outcome
        if delay > attempt.timeout:  # as a real adapter does: give up at the timeout
            delay, outcome = attempt.timeout, ProviderTimeout("no answer in time")
        self.clock.advance(delay)
        await asyncio.sleep(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Recorder(EngineListener):
    """Keeps every event the engine emits."""

    def __init__(self) -> None:
        self.attempts: list[AttemptRecord] = []
        self.fallbacks: list[Fallback] = []
        self.transitions: list[tuple[str, Transition]] = []
        self.costs: list[tuple[str, Usage, float]] = []

    def on_attempt(self, record: AttemptRecord) -> None:
        self.attempts.append(record)

    def on_fallback(self, fallback: Fallback) -> None:
        self.fallbacks.append(fallback)

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        self.transitions.append((provider, transition))

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        self.costs.append((provider, usage, cost))


def spec_of(name: str, **fields: Any) -> ProviderSpec:
    return ProviderSpec.model_validate(provider(name, **fields))
