"""Local model speed: the ONNX decoder beside llama.cpp on the same GGUF, and the sidecar.

Engines (each in its own subprocess, so peak memory is its own):

- ``onnx-q4``: SmolLM2 converted with GGUF's 4/8-bit blocks kept (MatMulNBits);
- ``onnx-fp32``: the same model dequantised to float32;
- ``llama.cpp``: ``llama-cpp-python`` on the GGUF itself (skipped when not installed;
  ``make reference-deps`` builds it).

Each is fed the same prompt token ids and decodes greedily (numpy argmax over the logits,
the same Python loop around both), with the same number of threads. Reported per engine:
prompt processing tokens/s, time to first token (prefill + first choice), decode tokens/s,
load time, and peak resident memory (``ru_maxrss``) with the interpreter's own share before
loading. Rounds alternate between engines so load from elsewhere falls on all of them;
medians are shown, and the best round's decode speed too (on shared cores, other work only
ever slows a round down).

``sidecar``: end to end over HTTP on 127.0.0.1 (tiny test model and SmolLM2): completion
tokens per second of non-streamed greedy requests, and time to the first streamed chunk.

Reproduce: ``.venv/bin/python bench/onnx_sidecar.py [--rounds 3] [--tokens 128] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = [
    {
        "role": "user",
        "content": (
            "Here are some notes from a team meeting. The build of the control plane takes twenty "
            "minutes on a fresh machine, the unit tests take two, and the local model answers when "
            "every paid provider is down. The budget for this month is two hundred dollars and "
            "forty have been spent. Summarise the notes in two sentences for a manager who was "
            "not there, and say what the biggest risk is."
        ),
    }
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs in a subprocess: load one engine, then time ``args.rounds`` generations."""
    from llmagents.onnx import TextGenerator
    from llmagents.onnx.convert import ensure_smollm2, find_smollm2_gguf
    from llmagents.onnx.decoder import DecodeState
    from llmagents.onnx.generation import ChatFormat
    from llmagents.onnx.model_dir import read_model_dir

    gguf = find_smollm2_gguf()
    model_dir = ensure_smollm2(weights="fp32" if engine == "onnx-fp32" else "q4")
    prompt = ChatFormat(read_model_dir(model_dir)).prompt(PROMPT)
    before = _rss_mb()
    started = time.perf_counter()
    if engine.startswith("onnx"):
        generator = TextGenerator(model_dir, threads=args.threads)
        decoder = generator.decoder

        def prefill() -> tuple[Any, np.ndarray]:
            state = DecodeState()
            return state, decoder.step(state, prompt)

        def step(state: Any, token: int) -> np.ndarray:
            return decoder.step(state, [token])
    else:
        from llama_cpp import Llama

        llm = Llama(
            model_path=str(gguf),
            n_ctx=2048,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            n_batch=512,
            verbose=False,
        )

        import llama_cpp

        def last_logits() -> np.ndarray:
            row = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            return np.ctypeslib.as_array(row, shape=(llm.n_vocab(),))

        def prefill() -> tuple[Any, np.ndarray]:
            llm.reset()
            llm.eval(prompt)
            return llm, last_logits()

        def step(state: Any, token: int) -> np.ndarray:
            llm.eval([token])
            return last_logits()

    load_s = time.perf_counter() - started
    prefill()  # warm-up: first-run allocations and kernel selection
    rounds = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        state, logits = prefill()
        token = int(np.argmax(logits))
        t1 = time.perf_counter()
        tokens = [token]
        for _ in range(args.tokens):
            token = int(np.argmax(step(state, token)))
            tokens.append(token)
        t2 = time.perf_counter()
        rounds.append(
            {
                "prefill_tps": len(prompt) / (t1 - t0),
                "ttft_ms": (t1 - t0) * 1000,
                "decode_tps": args.tokens / (t2 - t1),
                "tokens": tokens,
            }
        )
    return {
        "engine": engine,
        "prompt_tokens": len(prompt),
        "load_s": load_s,
        "rss_before_load_mb": before,
        "peak_rss_mb": _rss_mb(),
        "rounds": rounds,
    }


def _run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any] | None:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        engine,
        "--rounds",
        "1",
        "--tokens",
        str(args.tokens),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(
            f"{engine}: failed ({done.returncode}): {done.stderr.strip()[-400:]}", file=sys.stderr
        )
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _engines(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llmagents.onnx.convert import ensure_smollm2

    for weights in ("q4", "fp32"):  # convert here, so no worker's memory includes it
        ensure_smollm2(weights=weights)
    engines = ["onnx-q4", "onnx-fp32"]
    try:
        import llama_cpp  # noqa: F401

        engines.append("llama.cpp")
    except ImportError:
        print("llama.cpp: llama-cpp-python is not installed; skipped", file=sys.stderr)
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):  # one subprocess per engine and round, in turns
        for engine in engines:
            result = _run_engine(engine, args)
            if result is None:
                continue
            if engine in results:
                results[engine]["rounds"] += result["rounds"]
                results[engine]["peak_rss_mb"] = max(
                    results[engine]["peak_rss_mb"], result["peak_rss_mb"]
                )
            else:
                results[engine] = result
    return list(results.values())


async def _sidecar(model_dir: Path, name: str, requests: int, tokens: int) -> dict[str, Any]:
    import httpx
    from aiohttp import web

    from llmagents.onnx import ServerSettings, Sidecar

    sidecar = Sidecar(ServerSettings(model_dir=model_dir, threads=2))
    runner = web.AppRunner(sidecar.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await sidecar.loaded.wait()
        body = {"messages": PROMPT, "temperature": 0, "max_tokens": tokens}
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            await client.post("/v1/chat/completions", json=body)  # warm-up
            completion, started = 0, time.perf_counter()
            for _ in range(requests):
                answer = (await client.post("/v1/chat/completions", json=body)).json()
                completion += answer["usage"]["completion_tokens"]
            elapsed = time.perf_counter() - started
            first_chunks = []
            for _ in range(requests):
                t0 = time.perf_counter()
                async with client.stream(
                    "POST", "/v1/chat/completions", json={**body, "stream": True}
                ) as response:
                    async for line in response.aiter_lines():
                        if '"content":' in line and '"content": ""' not in line:
                            first_chunks.append((time.perf_counter() - t0) * 1000)
                            break
    finally:
        await runner.cleanup()
    return {
        "model": name,
        "requests": requests,
        "completion_tokens": completion,
        "tokens_per_s": completion / elapsed,
        "first_chunk_ms": statistics.median(first_chunks),
    }


def _report(
    engines: list[dict[str, Any]], sidecars: list[dict[str, Any]], args_tokens: int
) -> None:
    print(
        f"python {platform.python_version()}, {platform.machine()}, "
        f"{len(engines[0]['rounds']) if engines else 0} rounds"
    )
    reference = next((e for e in engines if e["engine"] == "llama.cpp"), None)
    print(
        "| engine | prompt tok | prefill tok/s | TTFT ms | decode tok/s | vs llama.cpp "
        "| best decode tok/s | vs llama.cpp | load s | peak RSS MB (before load) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def best(e: dict[str, Any]) -> float:
        return max(r["decode_tps"] for r in e["rounds"])

    ref_decode = (
        statistics.median(r["decode_tps"] for r in reference["rounds"]) if reference else None
    )
    for e in engines:
        med = {
            k: statistics.median(r[k] for r in e["rounds"])
            for k in ("prefill_tps", "ttft_ms", "decode_tps")
        }
        ratio = f"{med['decode_tps'] / ref_decode:.0%}" if ref_decode else "n/a"
        best_ratio = f"{best(e) / best(reference):.0%}" if reference else "n/a"
        print(
            f"| {e['engine']} | {e['prompt_tokens']} | {med['prefill_tps']:.0f} | "
            f"{med['ttft_ms']:.0f} | {med['decode_tps']:.1f} | {ratio} | {best(e):.1f} | "
            f"{best_ratio} | {e['load_s']:.1f} | "
            f"{e['peak_rss_mb']:.0f} ({e['rss_before_load_mb']:.0f}) |"
        )
    if reference:
        ours = next((e for e in engines if e["engine"] == "onnx-q4"), None)
        if ours:
            pairs = zip(ours["rounds"][0]["tokens"], reference["rounds"][0]["tokens"], strict=False)
            same = next((i for i, (a, b) in enumerate(pairs) if a != b), args_tokens + 1)
            print(f"\nonnx-q4 and llama.cpp greedy tokens identical for the first {same}")
    print("\n| sidecar model | requests | completion tokens | tokens/s | first chunk ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for s in sidecars:
        print(
            f"| {s['model']} | {s['requests']} | {s['completion_tokens']} | "
            f"{s['tokens_per_s']:.1f} | {s['first_chunk_ms']:.0f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128, help="Greedy tokens decoded.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=5, help="Sidecar requests per model.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args)))
        return 0
    engines = _engines(args)
    from llmagents.onnx.convert import ensure_smollm2
    from llmagents.onnx.tiny import TINY_MODEL_NAME, build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_model(Path(tmp))
        sidecars = [
            asyncio.run(_sidecar(tiny, TINY_MODEL_NAME, args.requests, 64)),
            asyncio.run(
                _sidecar(ensure_smollm2(), "smollm2-135m-instruct (q4)", args.requests, 64)
            ),
        ]
    _report(engines, sidecars, args.tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
