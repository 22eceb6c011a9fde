"""Gateway mode: a local OpenAI-compatible server that routes through the agent's engine.

The agent's own container (any framework, any language) sets ``OPENAI_BASE_URL`` to this
server and gets the pool's fallback, breakers, budget and cost tracking without knowing a
provider. It serves, on the pod's loopback only:

- ``POST /v1/chat/completions``, plain or streamed (``stream: true``, server-sent events).
  A stream falls back between providers until one has produced its first chunk, and only
  then sends its first byte; if that provider fails mid-answer the stream ends with an
  OpenAI-style ``{"error": ...}`` event and no ``[DONE]``, which OpenAI's clients raise as
  an error, never a silent 200 with a cut answer. The header ``x-llmagents-complexity``
  (simple, medium, complex) steers tier choice; ``x-llmagents-provider`` and
  ``x-llmagents-cost-usd`` on answers say who answered and what it cost.
- ``GET /v1/models``: the pool's models (each ``owned_by`` its provider).
- ``GET|PUT /v1/checkpoint/state``: the client's own state (any JSON, at most
  ``MAX_CUSTOM_STATE`` bytes), saved in the runner's checkpoint and returned after restarts.
  A PUT answers once the checkpoint holding it landed (``saved``), or after a bounded wait.
- ``/healthz`` and ``/readyz``.

Refusals use OpenAI's error shape: an exhausted budget is 429 ``insufficient_quota`` with
``x-should-retry: false`` (OpenAI's clients then do not retry), no provider answering is
503, a passed call deadline 504, an agent that stopped working (maxRuntime) 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmagents.errors import BudgetExhausted, CallFailed, DeadlineExceeded, ProviderError
from llmagents.routing import CallTask
from llmagents.runner.openai_wire import (
    ChatCall,
    ChunkWriter,
    WireError,
    completion_body,
    completion_id,
    error_body,
    parse_chat,
)

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner

logger = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
MAX_CUSTOM_STATE = 512 * 1024
"""Bytes of custom state a client may store; the checkpoint must stay within a ConfigMap."""
STATE_SAVE_TIMEOUT = 5.0


class Gateway:
    """The OpenAI-compatible server of one runner."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._site_runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes(
            [
                web.post("/v1/chat/completions", self._chat),
                web.get("/v1/models", self._models),
                web.get("/v1/checkpoint/state", self._get_state),
                web.put("/v1/checkpoint/state", self._put_state),
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
            ]
        )
        return app

    async def start(self, host: str, port: int) -> None:
        self._site_runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._site_runner.setup()
        site = web.TCPSite(self._site_runner, host, port)
        await site.start()
        self.port = self._site_runner.addresses[0][1]
        logger.info("agent %s: gateway listening on http://%s:%d/v1", self.runner.agent, host,
                    self.port)

    async def stop(self) -> None:
        if self._site_runner is not None:
            await self._site_runner.cleanup()
            self._site_runner = None

    # -- chat ---------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        call: ChatCall | None = None
        try:
            if not self.runner.accepting:
                raise WireError(503, f"agent {self.runner.agent} is not taking calls: "
                                f"{self.runner.message or self.runner.phase.value}",
                                kind="server_error", code="agent_stopped")  # fmt: skip
            call = parse_chat(await request.read(), request.headers.get("x-llmagents-complexity"))
            task = CallTask.from_messages(
                call.request.messages, complexity=call.complexity,
                max_output_tokens=call.request.max_tokens,
            )  # fmt: skip
            if call.stream:
                return await self._stream(request, call, task)
            result = await self.runner.engine.complete(call.request, task)
        except WireError as refused:
            return self._refuse(refused, stream=bool(call and call.stream))
        except (BudgetExhausted, CallFailed) as failed:
            return self._refuse(self._engine_error(failed), stream=bool(call and call.stream))
        answer = result.value
        body = completion_body(cid=completion_id(), model=answer.model, text=answer.text,
                               finish_reason=answer.finish_reason, usage=answer.usage)  # fmt: skip
        self.runner.metrics.gateway_request(stream=False, code=200)
        return web.json_response(body, headers=_answer_headers(result.provider, result.cost))

    async def _stream(self, request: web.Request, call: ChatCall, task: CallTask) -> web.StreamResponse:
        stream = await self.runner.engine.open_stream(call.request, task)
        writer = ChunkWriter(completion_id(), stream.model)
        usage_in_chunks = call.include_usage
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream; charset=utf-8",
                     "cache-control": "no-cache", "x-llmagents-provider": stream.provider},
        )  # fmt: skip
        code = 200
        try:
            await response.prepare(request)
            await response.write(writer.role(with_usage=usage_in_chunks))
            try:
                async for chunk in stream:
                    await response.write(writer.text(chunk.text, with_usage=usage_in_chunks))
            except ProviderError as broke:
                code = 502
                self.runner.metrics.stream_failed(stream.provider, broke.kind.value)
                message = self.runner.redact(f"provider {stream.provider} failed mid-answer: {broke}")
                logger.warning("agent %s: gateway stream: %s", self.runner.agent, message)
                await response.write(writer.error(message, code="provider_stream_failed"))
                return response
            await response.write(writer.finish(stream.finish_reason, with_usage=usage_in_chunks))
            if usage_in_chunks and stream.usage is not None:
                await response.write(writer.usage(stream.usage))
            await response.write(writer.done())
            await response.write_eof()
        except ConnectionResetError:
            code = 499  # the client went away; the provider did nothing wrong
            await stream.aclose()
        except asyncio.CancelledError:
            code = 499
            await stream.aclose()
            raise
        finally:
            self.runner.metrics.gateway_request(stream=True, code=code)
        return response

    def _engine_error(self, failed: BudgetExhausted | CallFailed) -> WireError:
        message = self.runner.redact(str(failed))
        if isinstance(failed, BudgetExhausted):
            return WireError(429, message, kind="insufficient_quota", code="budget_exhausted")
        if isinstance(failed, DeadlineExceeded):
            return WireError(504, message, kind="server_error", code="deadline_exceeded")
        return WireError(503, message, kind="server_error", code="all_providers_failed")

    def _refuse(self, refused: WireError, *, stream: bool) -> web.Response:
        self.runner.metrics.gateway_request(stream=stream, code=refused.status)
        headers = {}
        if refused.status in (429, 503) and refused.code in ("budget_exhausted", "agent_stopped"):
            headers["x-should-retry"] = "false"
        return web.json_response(refused.body(), status=refused.status, headers=headers)

    # -- the rest -----------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": p.model, "object": "model", "created": 0, "owned_by": p.name}
            for p in self.runner.config.pool.providers
        ]
        return web.json_response({"object": "list", "data": data})

    async def _get_state(self, request: web.Request) -> web.Response:
        saved = self.runner.checkpointer.last_success
        return web.json_response(
            {"state": self.runner.custom_state,
             "savedAt": saved.isoformat() if saved is not None else None}
        )  # fmt: skip

    async def _put_state(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_CUSTOM_STATE:
            body = error_body(f"custom state is limited to {MAX_CUSTOM_STATE} bytes",
                              kind="invalid_request_error", code="state_too_large")  # fmt: skip
            return web.json_response(body, status=413)
        try:
            document: Any = json.loads(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict) or "state" not in document:
            body = error_body('the body must be a JSON object {"state": ...}',
                              kind="invalid_request_error")  # fmt: skip
            return web.json_response(body, status=400)
        self.runner.set_custom_state(document["state"])
        saved = await self.runner.checkpointer.save(STATE_SAVE_TIMEOUT)
        return web.json_response({"saved": saved, "sequence": self.runner.checkpointer.sequence})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready = self.runner.accepting
        return web.json_response({"ready": ready}, status=200 if ready else 503)


def _answer_headers(provider: str, cost: float) -> dict[str, str]:
    return {"x-llmagents-provider": provider, "x-llmagents-cost-usd": f"{cost:.8f}"}
