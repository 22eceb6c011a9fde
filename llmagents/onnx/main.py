"""``llmagents onnx-server``: run the sidecar until SIGTERM.

The model directory comes from ``--model-dir``, else ``$LLMAGENTS_ONNX_MODEL_DIR`` (what
the operator sets when the agent mounts a model volume), else the cached conversion of
SmolLM2 (converted on first start: readiness stays false meanwhile). A model that fails
to load ends the process with status 1 after logging why, so a broken mount shows up as
a crash-looping container with the reason in its log rather than a pod that is never ready.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from llmagents.api.runner_config import DEFAULT_ONNX_PORT, ENV_ONNX_MODEL_DIR, ENV_ONNX_PORT
from llmagents.onnx.server import ServerSettings, Sidecar

logger = logging.getLogger(__name__)

ENV_ONNX_HOST = "LLMAGENTS_ONNX_HOST"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=env.get(ENV_ONNX_MODEL_DIR),
        help=f"Model directory (default ${ENV_ONNX_MODEL_DIR}, else the "
        "cached SmolLM2 conversion).",
    )
    parser.add_argument(
        "--model-name",
        help="Name clients must send as `model` "
        "(default: the model directory's config.json _name_or_path).",
    )
    # LLMAGENTS_POD_IP: the pod's own loopback address on the shared test host (see
    # hack/README.md, "The process kubelet"), where the runner looks for the sidecar.
    parser.add_argument(
        "--host",
        default=env.get(ENV_ONNX_HOST) or env.get("LLMAGENTS_POD_IP") or "127.0.0.1",
        help=f"Address to bind (default ${ENV_ONNX_HOST}, else $LLMAGENTS_POD_IP, else 127.0.0.1).",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get(ENV_ONNX_PORT, DEFAULT_ONNX_PORT)),
        help=f"Port (default ${ENV_ONNX_PORT} or {DEFAULT_ONNX_PORT}).",
    )
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads.")
    parser.add_argument(
        "--max-concurrency", type=int, default=1, help="Requests decoded at the same time."
    )
    parser.add_argument(
        "--max-queue", type=int, default=16, help="Requests waiting beyond those; more get 503."
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=512,
        help="Completion tokens when a request sets no max_tokens.",
    )


def main(args: argparse.Namespace) -> int:
    settings = ServerSettings(
        model_dir=args.model_dir,
        model_name=args.model_name,
        threads=args.threads,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        max_tokens=args.max_tokens,
    )
    return asyncio.run(serve(settings, host=args.host, port=args.port))


async def serve(settings: ServerSettings, *, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT; 1 if the model does not load."""
    sidecar = Sidecar(settings)
    runner = web.AppRunner(sidecar.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logger.info("onnx sidecar listening on %s:%d", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loaded = asyncio.create_task(sidecar.loaded.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([loaded, stopped], return_when=asyncio.FIRST_COMPLETED)
        loaded.cancel()
        if sidecar.load_error is not None:
            return 1
        await stopped
        return 0
    finally:
        await runner.cleanup()
