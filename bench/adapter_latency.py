"""Added latency of a provider adapter, and of the engine plus an adapter, over bare aiohttp.

Each protocol's fake provider runs in its own process (``llmagents fake-provider``) on
loopback, answering at once. Three ways of making the same chat call take turns, round after
round, so that load on the machine hits all of them alike:

- ``bare aiohttp``: ``ClientSession.post`` of the same JSON body, then ``response.json()``
  (the adapters' own HTTP client);
- ``adapter``: ``ProviderAdapter.complete`` (builds the payload, maps errors, parses usage);
- ``engine+adapter``: ``ProviderManager.execute`` around the same adapter call (ordering,
  breaker, budget and deadline bookkeeping, cost from usage).

"Added" is the distribution of per-round differences to the bare call, on the wall clock and
on this process's CPU clock (the adapter's and engine's work is all CPU in this process, and
the CPU clock does not count the time other processes hold the cores). Target: median added
wall time of engine plus adapter at most 0.5 ms.

Run alone: ``.venv/bin/python bench/adapter_latency.py [--calls N] [--protocol P] [--json]``;
``bench/engine.py`` (``make bench``) lists it as ``adapter-latency``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
from results import Row, print_table

from llmagents.api.pool import ProviderPoolSpec
from llmagents.chat import ChatRequest, Message, Role
from llmagents.providers import ProviderAdapter, build_adapter
from llmagents.routing import Attempt, CallTask, ProviderManager

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key"
MODELS = {"anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash", "openai": "gpt-4o-mini"}
REQUEST = ChatRequest(
    [Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Name three prime numbers.")],
    max_tokens=64,
)
TARGET_US = 500.0


def start_fake(protocol: str) -> tuple[subprocess.Popen[str], str]:
    return spawn_until_ready(
        [
            sys.executable,
            "-m",
            "llmagents.cli",
            "--log-level",
            "WARNING",
            "fake-provider",
            "--protocol",
            protocol,
            "--port",
            "0",
            "--api-key",
            KEY,
            "--duration",
            "600",
        ],
        f"fake {protocol} provider",
    )


def spawn_until_ready(
    argv: list[str], what: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start a server process and wait for its ``... ready at URL`` line; (process, URL)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "ready at" not in line:
        process.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def bare_call(
    base_url: str, client: aiohttp.ClientSession, adapter: ProviderAdapter
) -> Callable[[], Awaitable[Any]]:
    """The same request an adapter sends, made by hand: what a caller without us would do."""
    url = base_url + adapter._endpoint(stream=False)
    body = adapter._payload(REQUEST, stream=False)
    headers = adapter._auth_headers(KEY)

    async def call() -> Any:
        async with client.post(url, json=body, headers=headers) as response:
            response.raise_for_status()
            return await response.json()

    return call


async def sample(protocol: str, base_url: str, *, rounds: int, warmup: int) -> dict[str, Any]:
    """Per-call wall and CPU times in microseconds of each way, ``rounds`` calls each."""
    pool = ProviderPoolSpec.model_validate(
        {
            "providers": [
                {
                    "name": "fake",
                    "type": protocol,
                    "model": MODELS[protocol],
                    "baseURL": base_url,
                    "secretRef": {"name": "bench"},
                }
            ]
        }
    )
    adapter = build_adapter(pool.providers[0], api_key=KEY)
    manager = ProviderManager(pool)
    task = CallTask.from_messages(REQUEST.messages, max_output_tokens=REQUEST.max_tokens)

    async def through_engine(attempt: Attempt) -> Any:
        return await adapter.complete(REQUEST, timeout=attempt.timeout)

    async with aiohttp.ClientSession() as client, adapter:
        ways: dict[str, Callable[[], Awaitable[Any]]] = {
            "bare aiohttp": bare_call(base_url, client, adapter),
            "adapter": lambda: adapter.complete(REQUEST, timeout=30.0),
            "engine+adapter": lambda: manager.execute(task, through_engine),
        }
        for call in ways.values():  # warm connections, caches and code paths
            for _ in range(warmup):
                await call()
        wall: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        for round_number in range(rounds):
            names = list(ways)
            if round_number % 2:  # alternate the order so no way always goes first
                names.reverse()
            for name in names:
                started, started_cpu = time.perf_counter(), time.process_time()
                await ways[name]()
                cpu[name].append((time.process_time() - started_cpu) * 1e6)
                wall[name].append((time.perf_counter() - started) * 1e6)
    return {"wall": wall, "cpu": cpu}


def to_rows(protocol: str, samples: dict[str, Any], *, groups: int) -> list[Row]:
    """The bare call's time, and what the adapter and engine add: per-round differences."""
    rows = []
    for clock in ("wall", "cpu"):
        times = samples[clock]
        series = {"bare aiohttp, per call": times["bare aiohttp"]}
        for way in ("adapter", "engine+adapter"):
            series[f"{way}, added"] = [
                a - b for a, b in zip(times[way], times["bare aiohttp"], strict=True)
            ]
        for name, values in series.items():
            size = max(1, len(values) // groups)
            chunks = [values[i : i + size] for i in range(0, len(values), size)]
            cuts = statistics.quantiles(values, n=100)
            target = TARGET_US if name == "engine+adapter, added" and clock == "wall" else None
            rows.append(
                Row(
                    benchmark="adapter-latency",
                    case=f"{protocol}: {name} ({clock} clock)",
                    calls=len(values),
                    median_us=statistics.median(values),
                    best_round_median_us=min(statistics.median(c) for c in chunks),
                    p90_us=cuts[89],
                    p99_us=cuts[98],
                    target_us=target,
                )
            )
    return rows


def run(protocols: list[str], *, rounds: int, warmup: int, groups: int) -> list[Row]:
    rows: list[Row] = []
    for protocol in protocols:
        process, base_url = start_fake(protocol)
        try:
            samples = asyncio.run(sample(protocol, base_url, rounds=rounds, warmup=warmup))
        finally:
            process.terminate()
            process.wait(timeout=10)
        rows += to_rows(protocol, samples, groups=groups)
    return rows


def bench_adapter_latency(args: argparse.Namespace) -> list[Row]:
    """Entry for ``bench/engine.py``: its ``--calls`` and ``--rounds``, scaled to real calls."""
    rounds = max(200, min(args.calls // 10, 2000))
    return run(sorted(MODELS), rounds=rounds, warmup=min(args.warmup, 100), groups=args.rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="Calls per way and protocol.")
    parser.add_argument(
        "--protocol",
        action="append",
        choices=sorted(MODELS),
        help="Protocols to measure (default: all).",
    )
    parser.add_argument("--json", action="store_true", help="Print rows as JSON lines.")
    args = parser.parse_args()
    rows = run(args.protocol or sorted(MODELS), rounds=args.calls, warmup=100, groups=10)
    if args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
        return 0
    return 1 if print_table(rows, decimals=0) else 0


if __name__ == "__main__":
    sys.exit(main())
