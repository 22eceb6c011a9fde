"""Benchmarks of the fallback engine; ``make bench`` runs this file.

``engine-overhead``: what ``ProviderManager.execute`` adds to one call (ordering, breaker
admission, budget and deadline checks, health and cost bookkeeping, the result) around a
provider that answers at once. Real clocks, a three-provider pool, one event loop; each call
is timed alone; cases take turns in rounds. Reported: the median over all calls (checked
against the target, at most 20 us), the best round's median, p90 and p99.

Each benchmark is a function ``(args) -> list[Row]`` registered in ``BENCHMARKS``; add one by
writing the function and one line there. Run all: ``.venv/bin/python bench/engine.py``; one:
``--only engine-overhead``; ``--json`` prints machine-readable rows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

# Both live beside this file (bench/ is on sys.path when a script here runs).
from adapter_latency import bench_adapter_latency
from results import Row, print_table

from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.work import BudgetSpec, Complexity
from llmagents.chat import Usage
from llmagents.routing import Attempt, CallTask, ProviderManager

TARGET_US = 20.0


@dataclass(slots=True)
class _Answer:
    usage: Usage | None


_ANSWER = _Answer(Usage(120, 40))


async def _noop(attempt: Attempt) -> _Answer:
    return _ANSWER


def _pool(strategy: str) -> ProviderPoolSpec:
    def remote(name: str, priority: int, tier: str, price: float) -> dict[str, object]:
        return {
            "name": name,
            "type": "openai",
            "model": f"{name}-model",
            "priority": priority,
            "tier": tier,
            "secretRef": {"name": f"{name}-key"},
            "pricing": {"inputPerMillion": price, "outputPerMillion": price * 4},
        }

    return ProviderPoolSpec.model_validate(
        {
            "providers": [
                remote("primary", 1, "quality", 3.0),
                remote("secondary", 2, "balanced", 1.0),
                {
                    "name": "local",
                    "type": "onnx",
                    "model": "smollm2",
                    "priority": 3,
                    "tier": "fast",
                },
            ],
            "strategy": strategy,
            "circuitBreaker": {"failureRate": {"window": "60s", "minCalls": 20}},
        }
    )


async def _time_calls(execute: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    timer = time.perf_counter_ns
    samples = [0.0] * calls
    for i in range(calls):
        began = timer()
        await execute()
        samples[i] = (timer() - began) / 1000.0
    return samples


def _row(case: str, rounds: list[list[float]], target: float | None) -> Row:
    samples = [sample for one in rounds for sample in one]
    cuts = statistics.quantiles(samples, n=100)
    return Row(
        benchmark="engine-overhead",
        case=case,
        calls=len(samples),
        median_us=statistics.median(samples),
        best_round_median_us=min(statistics.median(one) for one in rounds),
        p90_us=cuts[89],
        p99_us=cuts[98],
        target_us=target,
    )


def bench_engine_overhead(args: argparse.Namespace) -> list[Row]:
    """Time of ``execute`` around a no-op provider, per strategy and setting.

    The cases take turns, round after round, so that load from elsewhere on the machine falls
    on all of them alike; the best round's median shows the cost when nothing else ran.
    """
    medium = CallTask(input_tokens=800, output_tokens=200, complexity=Complexity.MEDIUM)
    derived = CallTask(input_tokens=120, output_tokens=200)  # simple: regrouped by tier
    daily = BudgetSpec(limit=1e9, period="daily")
    cases: list[tuple[str, str, CallTask, BudgetSpec | None, bool]] = [
        ("priority", "priority", medium, None, False),
        ("priority, simple task (tier regroup)", "priority", derived, None, False),
        ("cost-optimized", "cost-optimized", medium, None, False),
        ("performance-optimized", "performance-optimized", medium, None, False),
        ("round-robin", "round-robin", medium, None, False),
        ("priority + daily budget", "priority", medium, daily, False),
        ("priority, primary breaker open (one fallback)", "priority", medium, None, True),
    ]
    per_round = max(1, args.calls // args.rounds)

    async def run() -> list[Row]:
        attempt = Attempt(_pool("priority").providers[0], 1, 0, 60.0)
        timed: list[tuple[str, Callable[[], Awaitable[object]], float | None]] = [
            ("baseline: await the no-op provider alone", lambda: _noop(attempt), None)
        ]
        for case, strategy, task, budget, primary_open in cases:
            engine = ProviderManager(_pool(strategy), budget=budget)
            if primary_open:
                until = datetime.now(UTC) + timedelta(hours=1)
                engine.force_open("primary", reason="benchmark", until=until)
            timed.append(
                (case, lambda engine=engine, task=task: engine.execute(task, _noop), TARGET_US)
            )
        for _, execute, _ in timed:
            await _time_calls(execute, args.warmup)
        rounds: list[list[list[float]]] = [[] for _ in timed]
        for _ in range(args.rounds):
            for samples, (_, execute, _) in zip(rounds, timed, strict=True):
                gc.collect()
                samples.append(await _time_calls(execute, per_round))
        return [
            _row(case, samples, target)
            for samples, (case, _, target) in zip(rounds, timed, strict=True)
        ]

    return asyncio.run(run())


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "engine-overhead": bench_engine_overhead,
    "adapter-latency": bench_adapter_latency,  # type: ignore[dict-item]
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=sorted(BENCHMARKS),
        action="append",
        help="Run only this benchmark (repeatable).",
    )
    parser.add_argument("--calls", type=int, default=20_000, help="Timed calls per case.")
    parser.add_argument("--rounds", type=int, default=10, help="Rounds the calls are split in.")
    parser.add_argument("--warmup", type=int, default=2_000, help="Untimed calls per case.")
    parser.add_argument("--json", action="store_true", help="Print rows as JSON lines.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the breaker opened on purpose says so at WARNING
    if not args.json:
        print(
            f"# python {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} cpus, {datetime.now(UTC):%Y-%m-%d}"
        )
    failed = False
    for name in args.only or list(BENCHMARKS):
        rows = BENCHMARKS[name](args)
        if args.json:
            for row in rows:
                print(json.dumps(asdict(row)))
            continue
        print(f"\n{name}\n")
        failed |= print_table(rows, decimals=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
