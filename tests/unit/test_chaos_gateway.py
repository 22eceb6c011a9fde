"""Chaos for a gateway-mode ``llmagents run -f``: clients keep calling while the runner is
SIGKILLed at random instants and started again, audited against the fakes' own counters.

Eight clients send chat calls (one in three streamed) to the runner's gateway without
pause; the primary provider flaps (30% of calls fail with 503, 429 or a reset). The runner
is a real subprocess killed with SIGKILL (no handler runs) at a random moment after it
started: while claiming the checkpoint and replaying the spend journal, or while serving.
At each kill the clients' calls sent and not yet received are counted: those are the calls
in flight. After the last life ends with SIGTERM (a final checkpoint), the checkpoint's
spend must be (``tooling.audit.audit_spend``):

- never above what the fakes billed (their token counters at the pool's prices);
- never below what the calls the clients received in full cost: an answer that left the
  runner is recorded, even one answered a moment before a kill (the spend journal);
- below the bill by no more than the calls in flight at the kills.

``LLMAGENTS_CHAOS_ROUNDS=20`` repeats the test; ``LLMAGENTS_CHAOS_SEED`` repeats one round's
kill times.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmagents.testing.fake_providers import ThreadedFake
from tooling.audit import Prices, audit_spend
from tooling.chaos import ROUNDS, flapping_fakes, pool_documents

PRICES = {"inputPerMillion": 100.0, "outputPerMillion": 200.0}
KILLS = 12
CLIENTS = 8
KEY = "sk-chaos-gateway"
GATEWAY_LINE = re.compile(r"gateway at http://127\.0\.0\.1:(\d+)/v1")


def manifest(primary: str, fallback: str) -> str:
    agent = {"apiVersion": "llmagents.dev/v1alpha1", "kind": "LLMAgent",
             "metadata": {"name": "chaos-gateway"},
             "spec": {"poolRef": {"name": "pool"}, "budget": {"limit": 10000, "period": "total"},
                      "checkpointInterval": "30s",
                      "work": {"agent": {"image": "example.test/agent:1"}}}}  # fmt: skip
    docs = pool_documents(primary, fallback, prices=PRICES, api_key=KEY)
    return yaml.safe_dump_all([*docs, agent])


@pytest.fixture
def fakes() -> Iterator[tuple[ThreadedFake, ThreadedFake]]:
    with flapping_fakes(KEY) as pair:
        yield pair


@dataclass
class Load:
    """The clients' side: where the gateway is, what they received, what is in flight."""

    url: str = ""
    up: asyncio.Event | None = None
    stop: bool = False
    in_flight: int = 0
    answered: int = 0
    answered_cost: float = 0.0
    dearest: float = 0.0

    def received(self, usage: dict[str, Any]) -> None:
        cost = (usage["prompt_tokens"] * PRICES["inputPerMillion"]
                + usage["completion_tokens"] * PRICES["outputPerMillion"]) / 1e6  # fmt: skip
        self.answered += 1
        self.answered_cost += cost
        self.dearest = max(self.dearest, cost)


async def _call(http: httpx.AsyncClient, load: Load, *, stream: bool) -> None:
    body: dict[str, Any] = {"model": "auto", "max_tokens": 64,
                            "messages": [{"role": "user", "content": "Chaos question?"}]}  # fmt: skip
    if not stream:
        response = await http.post(f"{load.url}/chat/completions", json=body)
        if response.status_code == 200:
            load.received(response.json()["usage"])
        return
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with http.stream("POST", f"{load.url}/chat/completions", json=body) as response:
        usage, done = None, False
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                usage = json.loads(line[6:]).get("usage") or usage
        if response.status_code == 200 and done and usage is not None:
            load.received(usage)


async def _client(load: Load, rng: random.Random) -> None:
    assert load.up is not None
    async with httpx.AsyncClient(timeout=15) as http:
        while not load.stop:
            await load.up.wait()
            load.in_flight += 1
            try:
                await _call(http, load, stream=rng.random() < 1 / 3)
            except httpx.HTTPError:
                pass  # the runner died under the call, or was not up yet
            finally:
                load.in_flight -= 1


async def _read_stderr(proc: asyncio.subprocess.Process, lines: list[str],
                       started: asyncio.Event, port: list[int]) -> None:  # fmt: skip
    assert proc.stderr is not None
    async for raw in proc.stderr:
        line = raw.decode(errors="replace")
        lines.append(line)
        if "state in" in line:
            started.set()
        if found := GATEWAY_LINE.search(line):
            port.append(int(found.group(1)))


@pytest.mark.timeout(170)
@pytest.mark.parametrize("round_", ROUNDS)
async def test_sigkill_of_a_gateway_loses_only_the_calls_in_flight(
    tmp_path: Path, fakes: tuple[ThreadedFake, ThreadedFake], round_: int
) -> None:
    seed = int(os.environ.get("LLMAGENTS_CHAOS_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    path = tmp_path / "agent.yaml"
    path.write_text(manifest(fakes[0].base_url, fakes[1].base_url))
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "llmagents.cli", "--log-level", "WARNING", "run", "-f",
            str(path), "--state-dir", str(state), "--gateway-port", "0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    load = Load(up=asyncio.Event())
    clients = [asyncio.create_task(_client(load, random.Random(rng.random())))
               for _ in range(CLIENTS)]  # fmt: skip
    kills, in_flight_at_kills = 0, 0
    began = time.monotonic()
    lines: list[str] = []
    try:
        while True:
            lines, started, port = [], asyncio.Event(), []
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
            )
            reader = asyncio.create_task(_read_stderr(proc, lines, started, port))
            try:
                await asyncio.wait_for(started.wait(), 60)
                # One life in four ends within its first 50 ms: while it claims the
                # checkpoint and replays the journal, or as its gateway opens.
                early = rng.random() < 0.25
                life = rng.uniform(0.0, 0.05 if early else 1.5) if kills < KILLS else 1.0
                deadline = time.monotonic() + life
                while time.monotonic() < deadline and proc.returncode is None:
                    if port and not load.up.is_set():
                        load.url = f"http://127.0.0.1:{port[0]}/v1"
                        load.up.set()
                    await asyncio.sleep(0.005)
                assert proc.returncode is None, f"seed {seed}: the runner exited: {lines}"
                if kills < KILLS:
                    in_flight_at_kills += load.in_flight if load.up.is_set() else 0
                    proc.send_signal(signal.SIGKILL)  # no await since counting: exact
                    load.up.clear()
                    await asyncio.wait_for(proc.wait(), 10)
                    kills += 1
                    continue
                assert load.up.is_set(), f"seed {seed}: the gateway did not come up: {lines}"
                load.stop = True  # the last life: let the clients finish, then stop it well
                await asyncio.wait_for(asyncio.gather(*clients), 30)
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 30)
                assert code == 0, f"seed {seed}: exit {code}: {''.join(lines)}"
                break
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                await reader
    finally:
        load.stop = True
        load.up.set()
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    checkpoint = json.loads((state / "checkpoint.json").read_text())["checkpoint"]
    recorded = float(checkpoint["engine"]["spend"]["total"]["cost"])
    charged, problems = audit_spend(
        recorded=recorded, answered=load.answered_cost,
        stats={"primary": fakes[0].stats(), "fallback": fakes[1].stats()},
        prices={name: Prices(PRICES["inputPerMillion"], PRICES["outputPerMillion"])
                for name in ("primary", "fallback")},
        in_flight_at_kills=in_flight_at_kills, dearest_call=load.dearest,
    )  # fmt: skip
    summary = (f"seed {seed}: {kills} kills, {load.answered} calls answered (${load.answered_cost:.6f}), "
               f"{in_flight_at_kills} in flight at the kills, charged ${charged:.6f}, recorded "
               f"${recorded:.6f} in {time.monotonic() - began:.0f} s")  # fmt: skip
    print(summary)
    assert not problems, f"{summary}: {problems}"
    assert load.answered > 10 * KILLS, summary
    outcomes = fakes[0].stats()["outcomes"]
    assert sum(n for kind, n in outcomes.items() if kind != "ok") > 0  # the primary did flap
