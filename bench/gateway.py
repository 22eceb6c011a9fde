"""Latency the runner's gateway adds to a chat call, at a steady 200 requests a second.

Three processes on loopback, as in a pod: the fake provider (``llmagents fake-provider``,
answering at once), the gateway (a gateway-mode ``Runner`` with its ``Gateway``, the fake
as its one paid provider, checkpoints to a local file so that every paid call requests one,
and every charge appended to its spend journal, as in a cluster), and this load generator.
The generator sends non-streaming chat calls open-loop at ``--rate`` per second (each at its
scheduled time, whether or not earlier ones returned), alternating every ``--phase``
seconds between calling the fake directly and calling it through the gateway, for
``--rounds`` rounds, so that load from elsewhere falls on both alike. "Added" is the gateway's percentile minus the direct percentile.

Targets (issue 15, for machines of different speed): the added median at most 1.6 times the
fake provider's own CPU time per served call measured in the same run, the added p99 at
most 5 ms. On a machine whose cores are busy with other work, wall-clock latency mostly
measures waiting for a core; the gateway process's CPU time per call (from ``/proc``) is
reported beside it, as the cost that does not depend on what else runs.

Run: ``.venv/bin/python bench/gateway.py [--rate 200] [--phase 5] [--rounds 3] [--json]
[--kind plain|tools|stream]`` (``--kind`` sends a tool-calling or a streamed request instead
of plain chat; ``bench/translation.py`` measures the translation's CPU alone);
``--split 400`` instead measures, sequentially in one process, the CPU per call of each part
of a gateway call (engine and adapter, the gateway's server side, an aiohttp client call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from adapter_latency import KEY, spawn_until_ready, start_fake

from tooling._proc import cpu_seconds

REPO = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
BODY = {
    "model": MODEL,
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Name three prime numbers."}],
    "max_tokens": 64,
}  # fmt: skip
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False}}}  # fmt: skip
BODIES: dict[str, dict[str, Any]] = {
    "plain": BODY,
    # The fake answers with a call of the tool the prompt names.
    "tools": {**BODY, "tools": [TOOL], "messages": [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Use get_weather for Paris"}]},
    # Twelve chunks (a role, ten words, a finish) and the usage chunk; timed to the last byte.
    "stream": {**BODY, "stream": True, "stream_options": {"include_usage": True}},
}  # fmt: skip
"""What ``--kind`` sends: plain chat, a tool-calling request, or a streamed one."""
TARGET_RATIO = 1.6
"""Added median at most this many times the fake provider's CPU per served call, same run."""
TARGET_P99_MS = 5.0


# -- the gateway process ----------------------------------------------------------------------


def _runner(upstream: str, state: Path) -> Any:
    from llmagents.api.runner_config import RunnerConfig
    from llmagents.runner import FileCheckpointStore, FileResultStore, MemoryStatusSink, Runner

    config = RunnerConfig.model_validate({
        "agent": {"name": "bench", "namespace": "bench", "uid": "bench"},
        "poolName": "bench",
        "pool": {"providers": [{
            "name": "fake", "type": "openai", "model": MODEL, "baseURL": upstream,
            "secretRef": {"name": "k"}, "timeout": "10s",
            "pricing": {"inputPerMillion": 0.15, "outputPerMillion": 0.6},
        }]},
        "mode": "gateway",
        "budget": {"limit": 1000},
        "checkpointInterval": "30s",
        "checkpointConfigMap": "bench-checkpoint",
        "apiKeyEnv": {"fake": "KEY"},
    })  # fmt: skip
    return Runner(
        config, api_keys={"fake": KEY}, store=FileCheckpointStore(state / "checkpoint.json"),
        status_sink=MemoryStatusSink(), results=FileResultStore(state / "results.jsonl"),
        spend_journal=state / "spend-journal.jsonl",  # as in a pod: every charge journaled
    )  # fmt: skip


async def serve(upstream: str, state: Path, seconds: float) -> None:
    from llmagents.runner.gateway import Gateway

    runner = _runner(upstream, state)
    await runner.start()
    gateway = Gateway(runner)
    await gateway.start("127.0.0.1", 0)
    print(f"ready at http://127.0.0.1:{gateway.port}/v1", flush=True)
    await asyncio.sleep(seconds)
    await gateway.stop()
    await runner.shutdown(5)


def start_gateway(
    upstream: str, state: Path, seconds: float, checkout: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The gateway of this checkout, or of ``checkout`` (another worktree: its ``llmagents``
    imported first, run with this interpreter and its libraries) for a side-by-side run."""
    script = Path(__file__) if checkout is None else checkout / "bench" / "gateway.py"
    env = None if checkout is None else {**os.environ, "PYTHONPATH": str(checkout)}
    return spawn_until_ready(
        [sys.executable, str(script), "--serve", upstream, "--state", str(state),
         "--seconds", str(seconds)],
        "gateway" if checkout is None else f"gateway of {checkout}", env=env,
    )  # fmt: skip


# -- the floor: the same two libraries with nothing of ours between them ----------------------


async def serve_floor(upstream: str, seconds: float) -> None:
    """A bare forwarder: uvicorn (httptools, on uvloop, as the gateway) serving an ASGI app
    that posts each request's body to ``upstream`` with an aiohttp ``ClientSession`` set up
    as the adapters' (no cookies, no decompression) and answers with what came back. No
    routing, validation, translation, accounting or limits: what a second loopback hop
    through these two libraries costs at the least."""
    import uvicorn

    http: aiohttp.ClientSession | None = None
    url = f"{upstream}/chat/completions"
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    answer_type = [(b"content-type", b"application/json")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        assert http is not None
        async with http.post(url, data=b"".join(parts), headers=headers) as response:
            body = await response.read()
            status = response.status
        length = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status,
                    "headers": answer_type + length})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    http = aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",), timeout=aiohttp.ClientTimeout(total=None),
    )  # fmt: skip
    config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="none", http="httptools",
                            ws="none", lifespan="off", log_config=None, access_log=False,
                            server_header=False)  # fmt: skip
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    port = server.servers[0].sockets[0].getsockname()[1]
    print(f"ready at http://127.0.0.1:{port}/v1", flush=True)
    ticking = asyncio.create_task(server.main_loop())
    await asyncio.sleep(seconds)
    server.should_exit = True
    await ticking
    await server.shutdown()
    await http.close()


def start_floor(upstream: str, seconds: float) -> tuple[subprocess.Popen[str], str]:
    return spawn_until_ready(
        [sys.executable, __file__, "--serve-floor", upstream, "--seconds", str(seconds)],
        "bare forwarder",
    )


# -- the load generator -----------------------------------------------------------------------


async def _phase(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str], rate: float,
    seconds: float, body: bytes,
) -> tuple[list[float], int]:  # fmt: skip
    """Open-loop calls at ``rate``/s for ``seconds``; latencies in ms, and failures."""
    latencies: list[float] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        began = time.perf_counter()
        try:
            async with client.post(url, data=body, headers=headers) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):  # the server fell too far behind
            ok = False
        if not ok:
            failures += 1
            return
        latencies.append((time.perf_counter() - began) * 1000)

    count = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return latencies, failures


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quantiles = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"median": statistics.median(ordered), "p90": quantiles[89], "p99": quantiles[98],
            "calls": len(ordered)}  # fmt: skip


async def measure(
    rate: float, phase: float, rounds: int, kind: str = "plain", *, floor: bool = False,
    versus: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Phases of direct calls and of calls through the gateway take turns, round after round;
    with ``floor``, also through the bare forwarder (``serve_floor``); with ``versus``, also
    through the gateway of that other checkout (an A/B comparison in one run)."""
    servers = ["gateway"] + ["floor"] * floor + ["versus"] * (versus is not None)
    body = json.dumps(BODIES[kind]).encode()
    fake, fake_url = start_fake("openai")
    gateways: dict[str, tuple[subprocess.Popen[str], str]] = {}
    with tempfile.TemporaryDirectory() as state:
        seconds = rounds * phase * (len(servers) + 1) + 30
        try:
            for server in servers:
                folder = Path(state) / server
                folder.mkdir()
                if server == "floor":
                    gateways[server] = start_floor(fake_url, seconds)
                else:
                    checkout = versus if server == "versus" else None
                    gateways[server] = start_gateway(fake_url, folder, seconds, checkout)
            # aiohttp's client costs less CPU per call than httpx: the generator must not be
            # what falls behind. Every path uses the same client, so the difference is fair.
            connector = aiohttp.TCPConnector(limit=256)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
                json_type = {"content-type": "application/json"}
                paths = {
                    "direct": (
                        fake.pid,
                        f"{fake_url}/chat/completions",
                        {"authorization": f"Bearer {KEY}", **json_type},
                    )
                }
                for server, (process, url) in gateways.items():
                    paths[server] = (
                        process.pid,
                        f"{url}/chat/completions",
                        {"authorization": "Bearer llmagents-gateway", **json_type},
                    )
                for _, url, headers in paths.values():  # warm up connections and code paths
                    await _phase(client, url, headers, rate, 1.0, body)
                samples: dict[str, list[float]] = {name: [] for name in paths}
                failed = dict.fromkeys(paths, 0)
                cpu = dict.fromkeys(paths, 0.0)  # of the process serving each path's phases
                for round_number in range(rounds):
                    names = list(paths)
                    if round_number % 2:  # direct first, then the others in turn both ways
                        names[1:] = reversed(names[1:])
                    for name in names:
                        pid, url, headers = paths[name]
                        before = cpu_seconds(pid)
                        latencies, failures = await _phase(client, url, headers, rate, phase,
                                                           body)  # fmt: skip
                        cpu[name] += cpu_seconds(pid) - before
                        samples[name] += latencies
                        failed[name] += failures
        finally:
            for process, _ in gateways.values():
                process.terminate()
            fake.terminate()
            for process, _ in gateways.values():
                process.wait(10)
            fake.wait(10)
    calls = int(rate * phase) * rounds
    direct = _percentiles(samples["direct"])
    fake_cpu = cpu["direct"] * 1000 / calls
    result: dict[str, Any] = {
        "kind": kind, "rate": rate, "phase_seconds": phase, "rounds": rounds, "direct": direct,
        "fake_cpu_ms_per_call": fake_cpu, "failures": failed, "gateways": {},
    }  # fmt: skip
    for server in servers:
        through = _percentiles(samples[server])
        added = {k: through[k] - direct[k] for k in ("median", "p90", "p99")}
        ratio = added["median"] / fake_cpu
        result["gateways"][server] = {
            "latency": through, "added": added, "ratio": ratio,
            "cpu_ms_per_call": cpu[server] * 1000 / calls,
            "ok": ratio <= TARGET_RATIO and added["p99"] <= TARGET_P99_MS,
        }  # fmt: skip
    if versus is not None:
        result["versus"] = str(versus)
    result["load_average"] = os.getloadavg()[0]
    return result


async def split(calls: int, kind: str = "plain") -> dict[str, float]:
    """CPU per call, sequentially in this one process, of each part of a gateway call."""
    from llmagents.routing import CallTask
    from llmagents.runner.gateway import Gateway
    from llmagents.runner.openai_chat import parse, to_chat

    fake, url = start_fake("openai")
    body = json.dumps(BODIES[kind]).encode()
    request = to_chat(parse(body))
    headers = {"content-type": "application/json"}
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as state:
        runner = _runner(url, Path(state))
        await runner.start()
        gateway = Gateway(runner)
        await gateway.start("127.0.0.1", 0)

        async def engine_call() -> None:
            task = CallTask.from_messages(request.messages)
            if kind != "stream":
                await runner.engine.complete(request, task)
                return
            async for _ in await runner.engine.open_stream(request, task):
                pass

        async with aiohttp.ClientSession() as session:

            def post(target: str, extra: dict[str, str]) -> Any:
                async def call() -> None:
                    async with session.post(target, data=body, headers={**headers, **extra}) as r:
                        await r.read()

                return call

            ways = {
                "engine + adapter": engine_call,
                "aiohttp client + gateway + engine + adapter": post(
                    f"http://127.0.0.1:{gateway.port}/v1/chat/completions", {}),
                "aiohttp client alone, to the fake": post(
                    f"{url}/chat/completions", {"authorization": f"Bearer {KEY}"}),
            }  # fmt: skip
            for name, call in ways.items():
                for _ in range(50):
                    await call()
                began = time.process_time()
                for _ in range(calls):
                    await call()
                result[name] = (time.process_time() - began) * 1000 / calls
        await gateway.stop()
        await runner.shutdown(5)
    fake.terminate()
    fake.wait(10)
    ways = list(result)
    result["gateway server side (the rest)"] = result[ways[1]] - result[ways[0]] - result[ways[2]]
    return result


def _table(result: dict[str, Any]) -> str:
    rows = [
        f"{result['kind']} requests:",
        "| path | calls | median | p90 | p99 | added median | added p99 | "
        + "added median / fake's CPU per call | CPU per call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    d = result["direct"]
    rows.append(
        f"| direct | {d['calls']} | {d['median']:.2f} ms | {d['p90']:.2f} ms | "
        f"{d['p99']:.2f} ms | | | | {result['fake_cpu_ms_per_call']:.2f} ms (fake) |"
    )
    for server, g in result["gateways"].items():
        r, a = g["latency"], g["added"]
        rows.append(
            f"| {server} | {r['calls']} | {r['median']:.2f} ms | "
            f"{r['p90']:.2f} ms | {r['p99']:.2f} ms | {a['median']:.2f} ms | "
            f"{a['p99']:.2f} ms | {g['ratio']:.2f} | {g['cpu_ms_per_call']:.2f} ms |"
        )
    rows.append(
        f"\nload average at the end: {result['load_average']:.1f}; failures {result['failures']}"
    )
    g = result["gateways"]["gateway"]
    rows.append(
        f"targets of the gateway (added median <= {TARGET_RATIO}x the fake's CPU per call, "
        f"added p99 <= {TARGET_P99_MS} ms): {'met' if g['ok'] else 'NOT met'}"
    )
    if "versus" in result:
        rows.append(f"versus: the gateway of {result['versus']}, in the same run")
    if "floor" in result["gateways"]:
        rows.append(
            "floor: uvicorn + aiohttp forwarding with nothing else (a stream is read whole "
            "and answered as one body there, so compare plain and tools calls only)"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="Calls per second.")
    parser.add_argument("--phase", type=float, default=5.0, help="Seconds per phase.")
    parser.add_argument("--rounds", type=int, default=3, help="Direct/gateway phase pairs.")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    parser.add_argument("--kind", choices=sorted(BODIES), default="plain",
                        help="Plain chat, a tool-calling request, or a streamed one.")  # fmt: skip
    parser.add_argument(
        "--split",
        type=int,
        metavar="CALLS",
        help="Instead: CPU per call of each part, CALLS sequential calls each.",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="Also through a bare uvicorn + aiohttp forwarder: the floor of the two libraries.",
    )
    parser.add_argument(
        "--versus",
        type=Path,
        metavar="CHECKOUT",
        help="Also through the gateway of another checkout (a worktree of another commit).",
    )
    parser.add_argument("--serve", metavar="UPSTREAM", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", metavar="UPSTREAM", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        from llmagents.runner.main import run_event_loop  # the loop the runner runs on

        run_event_loop(serve(args.serve, args.state, args.seconds))
        return 0
    if args.serve_floor:
        from llmagents.runner.main import run_event_loop

        run_event_loop(serve_floor(args.serve_floor, args.seconds))
        return 0
    if args.split:
        parts = asyncio.run(split(args.split, args.kind))
        print(
            json.dumps(parts, indent=2)
            if args.json
            else "\n".join(f"| {name} | {ms:.2f} ms |" for name, ms in parts.items())
        )
        return 0
    result = asyncio.run(measure(args.rate, args.phase, args.rounds, args.kind, floor=args.floor,
                                   versus=args.versus))  # fmt: skip
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
