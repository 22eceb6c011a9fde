"""The gateway's own part of a call's wall clock, before and after the provider's wait.

The added median of ``bench/gateway.py`` is wall-clock: what the gateway does between a
request's arrival and its own request to the provider ("before"), and between the
provider's answer (its head, as aiohttp hands it over) and the last write of its own answer
("after"), is waited for by the client; work after that write is not. This benchmark
stamps those moments inside gateway processes of one or more checkouts (``App.__call__``
and ``Transport._send`` wrapped, nothing else changed), drives them with the same open-loop
200/s as ``bench/gateway.py`` in alternating phases against one fake provider, and prints
per checkout the 10th percentile and the median of both parts in microseconds. The 10th
percentile is the least disturbed by other processes' use of the cores; uvicorn's parsing
before the application and aiohttp's building of the request are outside "before".

Run: ``.venv/bin/python bench/gateway_critical.py NAME=CHECKOUT [NAME=CHECKOUT ...]``
(each ``CHECKOUT`` a worktree; its ``llmagents`` is imported first).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PHASE, ROUNDS, RATE = 4.0, 3, 200.0


def serve(args: list[str]) -> int:
    """``--serve UPSTREAM STATE SECONDS``: a bench gateway with stamps; prints at its end."""
    sys.path.insert(0, str(HERE))
    import gateway

    from llmagents.providers import transport
    from llmagents.runner import web

    clock = time.perf_counter
    stamps: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
        "stamps", default=None
    )
    before: list[float] = []
    after: list[float] = []
    app_call, transport_send = web.App.__call__, transport.Transport._send

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        marks = {"began": clock()}
        token = stamps.set(marks)
        try:
            await app_call(self, scope, receive, send)
        finally:
            stamps.reset(token)
        if "sent" in marks:
            before.append(marks["sent"] - marks["began"])
            after.append(clock() - marks["answered"])

    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        marks = stamps.get()
        if marks is not None:
            marks["sent"] = clock()
        response = await transport_send(self, *args, **kwargs)
        if marks is not None:
            marks["answered"] = clock()
        return response

    web.App.__call__ = call  # type: ignore[method-assign]
    transport.Transport._send = send  # type: ignore[method-assign]
    from llmagents.runner.main import run_event_loop

    upstream, state, seconds = args
    run_event_loop(gateway.serve(upstream, Path(state), float(seconds)))
    tenth = statistics.quantiles(before, n=10)[0], statistics.quantiles(after, n=10)[0]
    print(json.dumps({"calls": len(before), "before_p10_us": tenth[0] * 1e6,
                      "before_median_us": statistics.median(before) * 1e6,
                      "after_p10_us": tenth[1] * 1e6,
                      "after_median_us": statistics.median(after) * 1e6}), flush=True)  # fmt: skip
    return 0


async def drive(checkouts: dict[str, Path]) -> dict[str, Any]:
    import aiohttp

    sys.path.insert(0, str(HERE))
    import gateway
    from adapter_latency import spawn_until_ready, start_fake

    fake, upstream = start_fake("openai")
    seconds = PHASE * ROUNDS * len(checkouts) + 15
    servers: dict[str, Any] = {}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as state:
        try:
            for name, checkout in checkouts.items():
                folder = Path(state) / name
                folder.mkdir()
                servers[name] = spawn_until_ready(
                    [sys.executable, __file__, "--serve", upstream, str(folder), str(seconds)],
                    name, env={**os.environ, "PYTHONPATH": str(checkout)},
                )  # fmt: skip
            body = json.dumps(gateway.BODY).encode()
            headers = {"content-type": "application/json"}
            connector = aiohttp.TCPConnector(limit=256)
            async with aiohttp.ClientSession(connector=connector) as client:
                for _, url in servers.values():  # warm up
                    await gateway._phase(client, f"{url}/chat/completions", headers, RATE, 1.0,
                                         body)  # fmt: skip
                for round_number in range(ROUNDS):
                    names = list(servers)[:: -1 if round_number % 2 else 1]
                    for name in names:
                        url = f"{servers[name][1]}/chat/completions"
                        await gateway._phase(client, url, headers, RATE, PHASE, body)
            for name, (process, _) in servers.items():
                assert process.stdout is not None
                results[name] = json.loads(process.stdout.readline())
                process.wait(60)
        finally:
            for process, _ in servers.values():
                if process.poll() is None:
                    process.terminate()
            fake.terminate()
            fake.wait(10)
    results["load_average"] = os.getloadavg()[0]
    return results


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        return serve(sys.argv[2:])
    checkouts = {name: Path(path) for name, path in (a.split("=", 1) for a in sys.argv[1:])}
    if not checkouts:
        print(__doc__)
        return 2
    results = asyncio.run(drive(checkouts))
    print(f"load average at the end: {results.pop('load_average'):.1f}")
    print("| checkout | calls | before: p10 / median | after: p10 / median |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['calls']} | {r['before_p10_us']:.0f} / {r['before_median_us']:.0f}"
              f" us | {r['after_p10_us']:.0f} / {r['after_median_us']:.0f} us |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
