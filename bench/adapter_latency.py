"""Added latency of a provider adapter, and of the engine plus an adapter, over bare httpx.

Each protocol's fake provider runs in its own process (``llmagents fake-provider``) on
loopback, answering at once. Three ways of making the same chat call take turns, round after
round, so that load on the machine hits all of them alike:

- ``bare``: ``httpx.AsyncClient.post`` with the protocol's JSON body, then ``response.json()``;
- ``adapter``: ``ProviderAdapter.complete`` (builds the payload, maps errors, parses usage);
- ``engine``: ``ProviderManager.execute`` around the same adapter call (ordering, breaker,
  budget and deadline bookkeeping, cost from usage).

The added latency is the median of the per-round differences to ``bare``. Target: at most
0.5 ms for the engine plus adapter. Run: ``.venv/bin/python bench/adapter_latency.py``.
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
from pathlib import Path
from typing import Any

import httpx

from llmagents.api.pool import ProviderPoolSpec, ProviderType
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
TARGET_MS = 0.5


def start_fake(protocol: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmagents.cli", "--log-level", "WARNING", "fake-provider",
         "--protocol", protocol, "--port", "0", "--api-key", KEY, "--duration", "600"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "ready at" not in line:
        process.kill()
        raise RuntimeError(f"fake {protocol} provider did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def bare_call(protocol: str, base_url: str, client: httpx.AsyncClient,
              adapter: ProviderAdapter) -> Callable[[], Awaitable[Any]]:
    """The same request an adapter sends, made by hand: what a caller without us would do."""
    url = httpx.URL(base_url + adapter._endpoint(stream=False))
    body = adapter._payload(REQUEST, stream=False)
    headers = adapter._auth_headers(KEY)

    async def call() -> Any:
        response = await client.post(url, json=body, headers=headers)
        response.raise_for_status()
        return response.json()

    return call


async def measure(protocol: str, base_url: str, rounds: int) -> dict[str, Any]:
    pool = ProviderPoolSpec.model_validate(
        {"providers": [{"name": "fake", "type": protocol, "model": MODELS[protocol],
                        "baseURL": base_url, "secretRef": {"name": "bench"}}]}
    )
    spec = pool.providers[0]
    adapter = build_adapter(spec, api_key=KEY)
    manager = ProviderManager(pool)
    task = CallTask.from_messages(REQUEST.messages, max_output_tokens=REQUEST.max_tokens)

    async def through_engine(attempt: Attempt) -> Any:
        return await adapter.complete(REQUEST, timeout=attempt.timeout)

    async with httpx.AsyncClient() as client, adapter:
        ways: dict[str, Callable[[], Awaitable[Any]]] = {
            "bare": bare_call(protocol, base_url, client, adapter),
            "adapter": lambda: adapter.complete(REQUEST, timeout=30.0),
            "engine": lambda: manager.execute(task, through_engine),
        }
        for call in ways.values():  # warm connections, caches and code paths
            for _ in range(50):
                await call()
        times: dict[str, list[float]] = {name: [] for name in ways}
        for round_number in range(rounds):
            names = list(ways)
            if round_number % 2:  # alternate the order so no way always goes first
                names.reverse()
            for name in names:
                started = time.perf_counter()
                await ways[name]()
                times[name].append((time.perf_counter() - started) * 1000)
    return summarize(protocol, times)


def summarize(protocol: str, times: dict[str, list[float]]) -> dict[str, Any]:
    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1]

    result: dict[str, Any] = {"protocol": protocol, "rounds": len(times["bare"])}
    for name, values in times.items():
        result[name] = {"median_ms": statistics.median(values), "p90_ms": pct(values, 90)}
    for name in ("adapter", "engine"):
        diffs = [a - b for a, b in zip(times[name], times["bare"], strict=True)]
        result[f"{name}_added_median_ms"] = statistics.median(diffs)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="Calls per way and protocol.")
    parser.add_argument("--protocol", action="append", choices=sorted(MODELS),
                        help="Protocols to measure (default: all).")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    results = []
    for protocol in args.protocol or sorted(MODELS):
        if ProviderType(protocol) not in ProviderType:
            raise SystemExit(f"unknown protocol {protocol}")
        process, base_url = start_fake(protocol)
        try:
            results.append(asyncio.run(measure(protocol, base_url, args.rounds)))
        finally:
            process.terminate()
            process.wait(timeout=10)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'protocol':<10} {'bare':>8} {'adapter':>8} {'engine':>8}   added median (ms)")
    for r in results:
        print(
            f"{r['protocol']:<10} {r['bare']['median_ms']:8.3f} {r['adapter']['median_ms']:8.3f} "
            f"{r['engine']['median_ms']:8.3f}   adapter {r['adapter_added_median_ms']:+.3f}  "
            f"engine+adapter {r['engine_added_median_ms']:+.3f}  (target <= {TARGET_MS})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
