"""The ONNX sidecar of ``llmagents run``: ``llmagents onnx-server`` as a child process.

In a pod the local model runs in a sidecar container beside the runner; on a machine
without Kubernetes, a pool with an ``onnx`` provider and no ``baseURL`` gets the same server
as a child process on a free loopback port (in its own session, so that Ctrl-C reaches the
runner only and the sidecar is stopped after the final checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from llmagents.api.pool import ProviderType
from llmagents.api.runner_config import RunnerConfig
from llmagents.errors import ConfigError


def needs_sidecar(config: RunnerConfig) -> bool:
    """Whether the pool has an ``onnx`` provider with no server of its own."""
    return any(p.type is ProviderType.ONNX and p.base_url is None for p in config.pool.providers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SidecarProcess:
    """``llmagents onnx-server`` as a child process on a free loopback port."""

    def __init__(self, log: Path, model_dir: Path | None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "llmagents.cli", "onnx-server",
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        if model_dir is not None:
            argv += ["--model-dir", str(model_dir)]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            # Its own session: Ctrl-C reaches us only, and we stop it after the checkpoint.
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.log = log

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        if self.proc.poll() is not None:
            raise ConfigError(
                f"the ONNX sidecar exited with {self.proc.returncode}; see {self.log}"
            )
        try:
            async with http.get(f"{self.url}/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def wait_ready(self, stop: asyncio.Event, timeout: float) -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            return await self._wait_ready(http, stop, timeout)

    async def _wait_ready(
        self, http: aiohttp.ClientSession, stop: asyncio.Event, timeout: float
    ) -> bool:
        deadline = time.monotonic() + timeout
        while not await self.ready(http):
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the ONNX sidecar was not ready in {timeout:.0f} s; see {self.log}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if stop.is_set():
                return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
