"""Benchmarks of the fallback engine; ``make bench`` runs this file.

``engine-overhead``: what ``ProviderManager.execute`` adds to one call (ordering, breaker
admission, budget and deadline checks, health and cost bookkeeping, the result) around a
provider that answers at once. Real clocks, a three-provider pool, one event loop; each call
is timed alone and the median is reported. Target: at most 20 us.

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

from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.work import BudgetSpec, Complexity
from llmagents.chat import Usage
from llmagents.routing import Attempt, CallTask, ProviderManager

TARGET_US = 20.0


@dataclass
class Row:
    benchmark: str
    case: str
    calls: int
    median_us: float
    p90_us: float
    p99_us: float
    target_us: float | None = None


@dataclass(slots=True)
class _Answer:
    usage: Usage | None


_ANSWER = _Answer(Usage(120, 40))


async def _noop(attempt: Attempt) -> _Answer:
    return _ANSWER


def _pool(strategy: str) -> ProviderPoolSpec:
    def remote(name: str, priority: int, tier: str, price: float) -> dict[str, object]:
        return {
            "name": name, "type": "openai", "model": f"{name}-model", "priority": priority,
            "tier": tier, "secretRef": {"name": f"{name}-key"},
            "pricing": {"inputPerMillion": price, "outputPerMillion": price * 4},
        }

    return ProviderPoolSpec.model_validate(
        {
            "providers": [
                remote("primary", 1, "quality", 3.0),
                remote("secondary", 2, "balanced", 1.0),
                {"name": "local", "type": "onnx", "model": "smollm2", "priority": 3,
                 "tier": "fast"},
            ],
            "strategy": strategy,
            "circuitBreaker": {"failureRate": {"window": "60s", "minCalls": 20}},
        }
    )


async def _time_calls(
    execute: Callable[[], Awaitable[object]], calls: int, warmup: int
) -> list[float]:
    for _ in range(warmup):
        await execute()
    gc.collect()
    timer = time.perf_counter_ns
    samples = [0.0] * calls
    for i in range(calls):
        began = timer()
        await execute()
        samples[i] = (timer() - began) / 1000.0
    return samples


def _row(case: str, samples: list[float], target: float | None) -> Row:
    cuts = statistics.quantiles(samples, n=100)
    return Row("engine-overhead", case, len(samples), statistics.median(samples), cuts[89],
               cuts[98], target)


def bench_engine_overhead(args: argparse.Namespace) -> list[Row]:
    """Median time of ``execute`` around a no-op provider, per strategy and setting."""
    medium = CallTask(input_tokens=800, output_tokens=200, complexity=Complexity.MEDIUM)
    derived = CallTask(input_tokens=120, output_tokens=200)  # simple: regrouped by tier
    cases: list[tuple[str, str, CallTask, dict[str, object]]] = [
        ("priority", "priority", medium, {}),
        ("priority, simple task (tier regroup)", "priority", derived, {}),
        ("cost-optimized", "cost-optimized", medium, {}),
        ("performance-optimized", "performance-optimized", medium, {}),
        ("round-robin", "round-robin", medium, {}),
        ("priority + daily budget", "priority", medium,
         {"budget": BudgetSpec(limit=1e9, period="daily")}),
        ("priority, primary breaker open (one fallback)", "priority", medium, {"open": True}),
    ]

    async def run() -> list[Row]:
        rows = []
        attempt = Attempt(_pool("priority").providers[0], 1, 0, 60.0)
        baseline = await _time_calls(lambda: _noop(attempt), args.calls, args.warmup)
        rows.append(_row("baseline: await the no-op provider alone", baseline, None))
        for case, strategy, task, options in cases:
            engine = ProviderManager(_pool(strategy), budget=options.get("budget"))  # type: ignore[arg-type]
            if options.get("open"):
                engine.force_open("primary", reason="benchmark",
                                  until=datetime.now(UTC) + timedelta(hours=1))
            samples = await _time_calls(lambda: engine.execute(task, _noop), args.calls,
                                        args.warmup)
            rows.append(_row(case, samples, TARGET_US))
        return rows

    return asyncio.run(run())


BENCHMARKS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "engine-overhead": bench_engine_overhead,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="Run only this benchmark (repeatable).")
    parser.add_argument("--calls", type=int, default=20_000, help="Timed calls per case.")
    parser.add_argument("--warmup", type=int, default=2_000, help="Untimed calls per case.")
    parser.add_argument("--json", action="store_true", help="Print rows as JSON lines.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the breaker opened on purpose says so at WARNING
    if not args.json:
        print(f"# python {platform.python_version()} on {platform.machine()}, "
              f"{os.cpu_count()} cpus, {datetime.now(UTC):%Y-%m-%d}")
    failed = False
    for name in args.only or list(BENCHMARKS):
        for row in BENCHMARKS[name](args):
            if args.json:
                print(json.dumps(asdict(row)))
            else:
                verdict = ""
                if row.target_us is not None:
                    ok = row.median_us <= row.target_us
                    failed |= not ok
                    verdict = "ok" if ok else f"OVER {row.target_us:g} us"
                print(f"{row.benchmark:16} {row.case:48} median {row.median_us:7.2f} us  "
                      f"p90 {row.p90_us:7.2f}  p99 {row.p99_us:7.2f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
