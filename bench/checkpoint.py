"""Checkpoint size and write time for an agent with 10,000 completed tasks.

The checkpoint is what a runner writes after every task (and soon after every paid gateway
call), so its cost bounds how fast the work can go. This builds the state a real runner
would have after 10,000 tasks over a pool of three providers (an engine that made the
calls, with breaker transitions and spend), then measures:

- building the document and encoding it (JSON, gzip above 64 KiB) — the runner's CPU work;
- writing it to a ``FileCheckpointStore`` (local runs), and, with ``--kubeconfig``, to a
  ``ConfigMapCheckpointStore`` on a real API server (a scratch namespace is created and
  deleted), which is the store of a runner in a cluster.

Run: ``.venv/bin/python bench/checkpoint.py [--tasks 10000] [--writes 50] [--kubeconfig K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.work import BudgetSpec
from llmagents.chat import Usage
from llmagents.errors import ServerError
from llmagents.routing import Attempt, CallTask, ProviderManager
from llmagents.runner.checkpoint import Checkpoint, encode
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.checkpoint_writer import Checkpointer


class _Answer:
    def __init__(self) -> None:
        self.usage = Usage(420, 180)


async def _engine_after(tasks: int) -> ProviderManager:
    """An engine that served ``tasks`` calls, the primary failing every tenth."""
    prices = {"inputPerMillion": 3.0, "outputPerMillion": 15.0}
    pool = ProviderPoolSpec.model_validate({"providers": [
        {"name": "claude", "type": "anthropic", "model": "m", "secretRef": {"name": "k"},
         "priority": 1, "pricing": prices, "maxRetries": 0},
        {"name": "gpt", "type": "openai", "model": "m", "secretRef": {"name": "k"},
         "priority": 2, "pricing": prices},
        {"name": "local", "type": "onnx", "model": "m", "priority": 3},
    ], "circuitBreaker": {"maxFailures": 1, "recoveryTime": "1ms"}})  # fmt: skip
    manager = ProviderManager(pool, budget=BudgetSpec(limit=1e6, period="monthly"))
    for i in range(tasks):

        async def call(attempt: Attempt, i: int = i) -> _Answer:
            if attempt.provider.name == "claude" and i % 10 == 0:
                raise ServerError("overloaded")
            return _Answer()

        await manager.execute(CallTask(input_tokens=400, output_tokens=200), call)
    return manager


def _state(manager: ProviderManager, tasks: int) -> Any:
    started = datetime.now(UTC)
    completed = [f"task-{i:05d}" for i in range(tasks)]

    def build(epoch: int, sequence: int, with_custom: bool) -> Checkpoint:
        return Checkpoint(
            agent_uid="bench", epoch=epoch, sequence=sequence, written_at=datetime.now(UTC),
            started_at=started, engine=manager.snapshot(), total_tasks=tasks,
            completed=completed, failed={}, custom_state=None,
        )  # fmt: skip

    return build


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median_ms": statistics.median(ordered) * 1000,
            "p90_ms": ordered[int(len(ordered) * 0.9) - 1] * 1000}  # fmt: skip


async def _writes(store: Any, build: Any, writes: int) -> dict[str, float]:
    checkpointer = Checkpointer(store, build, interval=3600, min_spacing=0)
    await checkpointer.claim(lambda _: None)
    writer = asyncio.create_task(checkpointer.run())
    times = []
    for _ in range(writes):
        began = time.perf_counter()
        assert await checkpointer.save(30), "write failed"
        times.append(time.perf_counter() - began)
    checkpointer.close()
    await writer
    return {**_ms(times), "stored_bytes": checkpointer.last_size}


async def _configmap_writes(kubeconfig: str, build: Any, writes: int) -> dict[str, float]:
    from llmagents.api.runner_config import AgentIdentity
    from llmagents.kube import KubeClient
    from llmagents.runner.configmap_store import ConfigMapCheckpointStore

    kube = await KubeClient.from_environment(kubeconfig=kubeconfig)
    namespace = f"bench-checkpoint-{uuid.uuid4().hex[:6]}"
    await kube.request("POST", "/api/v1/namespaces",
                       body={"metadata": {"name": namespace}})  # fmt: skip
    try:
        await kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                           body={"metadata": {"name": "bench-checkpoint"}})  # fmt: skip
        # The ConfigMap exists, so the store never creates it nor uses the owner's uid.
        owner = AgentIdentity(name="bench", namespace=namespace, uid="-")
        store = ConfigMapCheckpointStore(kube, owner=owner, name="bench-checkpoint")
        return await _writes(store, build, writes)
    finally:
        await kube.request("DELETE", f"/api/v1/namespaces/{namespace}")
        await kube.aclose()


async def measure(tasks: int, writes: int, kubeconfig: str | None) -> dict[str, Any]:
    manager = await _engine_after(tasks)
    build = _state(manager, tasks)
    snapshots, encodings = [], []
    encoded = None
    for sequence in range(writes):
        began = time.perf_counter()
        document = build(1, sequence, True)
        built = time.perf_counter()
        encoded = encode(document)
        snapshots.append(built - began)
        encodings.append(time.perf_counter() - built)
    assert encoded is not None
    result: dict[str, Any] = {
        "tasks": tasks,
        "writes": writes,
        "json_bytes": encoded.json_size,
        "stored_bytes": encoded.size,
        "compressed": encoded.compressed,
        "build": _ms(snapshots),
        "encode": _ms(encodings),
    }
    with tempfile.TemporaryDirectory() as state:
        result["file_store"] = await _writes(FileCheckpointStore(Path(state) / "cp.json"),
                                             build, writes)  # fmt: skip
    if kubeconfig:
        result["configmap_store"] = await _configmap_writes(kubeconfig, build, writes)
    return result


def _report(r: dict[str, Any]) -> str:
    kind = "gzip" if r["compressed"] else "plain"
    head = (
        f"{r['tasks']} completed tasks: JSON {r['json_bytes'] / 1024:.1f} KiB, "
        f"stored {r['stored_bytes'] / 1024:.1f} KiB ({kind})"
    )
    steps = [
        ("build the document (engine snapshot)", r["build"]),
        ("encode (JSON + gzip)", r["encode"]),
        ("save to a local file (all of it, fsync)", r["file_store"]),
    ]
    if "configmap_store" in r:
        steps.append(("save to the ConfigMap (all of it, API server)", r["configmap_store"]))
    rows = [f"| {name} | {t['median_ms']:.2f} ms | {t['p90_ms']:.2f} ms |" for name, t in steps]
    return "\n".join([head, "", "| step | median | p90 |", "| --- | ---: | ---: |", *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="Completed tasks.")
    parser.add_argument("--writes", type=int, default=50, help="Writes measured per store.")
    parser.add_argument("--kubeconfig", help="Also write to a ConfigMap on this cluster.")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = parser.parse_args()
    logging.getLogger("llmagents").setLevel(logging.ERROR)  # the scripted breaker openings
    result = asyncio.run(measure(args.tasks, args.writes, args.kubeconfig))
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
