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
- ``GET|PUT /v1/checkpoint/state``: the client's own state (any strict JSON, at most
  ``MAX_CUSTOM_STATE`` bytes and ``MAX_STATE_NESTING`` levels deep; 413 and 400 otherwise),
  saved in the runner's checkpoint and returned after restarts. A PUT answers once the
  checkpoint holding it landed (``saved``), or after a bounded wait.
- ``/healthz`` and ``/readyz``.

It runs on ``http11.Server`` rather than aiohttp's server: the gateway is on the path of
every model call, and aiohttp's server alone cost about the whole latency budget per request
(``bench/README.md``). Refusals use OpenAI's error shape: an exhausted budget is 429 ``insufficient_quota`` with
``x-should-retry: false`` (OpenAI's clients then do not retry), no provider answering is
503, a passed call deadline 504, an agent that stopped working (maxRuntime) 503.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llmagents.errors import BudgetExhausted, CallFailed, DeadlineExceeded, ProviderError
from llmagents.routing import CallTask
from llmagents.runner.checkpoint import nesting_depth
from llmagents.runner.http11 import Request, Response, Server, StreamingResponse
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
    from llmagents.runner.engine import OpenStream
    from llmagents.runner.lifecycle import Runner

logger = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
MAX_CUSTOM_STATE = 512 * 1024
"""Bytes of custom state a client may store; the checkpoint must stay within a ConfigMap."""
MAX_STATE_NESTING = 32
"""Levels of arrays and objects custom state may nest: the checkpoint's encoder and decoder
recurse, and the checkpoint itself must stay within ``checkpoint.MAX_NESTING``."""
STATE_SAVE_TIMEOUT = 5.0

Route = Callable[[Request], Awaitable[Response | StreamingResponse]]


def json_response(document: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    body = json.dumps(document, separators=(",", ":")).encode()
    return Response(status, body, headers=headers if headers is not None else {})


def _server_error(status: int, message: str) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json_response(error_body(message, kind=kind), status)


class Gateway:
    """The OpenAI-compatible server of one runner."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._routes: dict[str, dict[str, Route]] = {
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/models": {"GET": self._models},
            "/v1/checkpoint/state": {"GET": self._get_state, "PUT": self._put_state},
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
        }
        self._server = Server(self._dispatch, name=f"agent {runner.agent}: gateway",
                              max_body=MAX_BODY, error_response=_server_error)  # fmt: skip

    @property
    def port(self) -> int | None:
        return self._server.port

    async def start(self, host: str, port: int) -> None:
        await self._server.start(host, port)
        logger.info("agent %s: gateway listening on http://%s:%d/v1", self.runner.agent, host,
                    self.port)

    async def stop(self) -> None:
        await self._server.stop(grace=2.0)

    async def _dispatch(self, request: Request) -> Response | StreamingResponse:
        methods = self._routes.get(request.path)
        if methods is None:
            body = error_body(f"no route for {request.path}; the gateway serves "
                              "/v1/chat/completions, /v1/models and /v1/checkpoint/state",
                              kind="invalid_request_error", code="not_found")  # fmt: skip
            return json_response(body, 404)
        route = methods.get(request.method)
        if route is None:
            allowed = ", ".join(methods)
            body = error_body(f"{request.path} takes {allowed}, not {request.method}",
                              kind="invalid_request_error", code="method_not_allowed")  # fmt: skip
            return json_response(body, 405, {"allow": allowed})
        return await route(request)

    # -- chat ---------------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response | StreamingResponse:
        call: ChatCall | None = None
        try:
            if not self.runner.accepting:
                raise WireError(503, f"agent {self.runner.agent} is not taking calls: "
                                f"{self.runner.message or self.runner.phase.value}",
                                kind="server_error", code="agent_stopped")  # fmt: skip
            call = parse_chat(request.body, request.headers.get("x-llmagents-complexity"))
            task = CallTask.from_messages(
                call.request.messages, complexity=call.complexity,
                max_output_tokens=call.request.max_tokens,
            )  # fmt: skip
            if call.stream:
                stream = await self.runner.engine.open_stream(call.request, task)
                return StreamingResponse(
                    self._stream_body(stream, call.include_usage),
                    headers={"cache-control": "no-cache", "x-llmagents-provider": stream.provider},
                )  # fmt: skip
            result = await self.runner.engine.complete(call.request, task)
        except WireError as refused:
            return self._refuse(refused, stream=bool(call and call.stream))
        except (BudgetExhausted, CallFailed) as failed:
            return self._refuse(self._engine_error(failed), stream=bool(call and call.stream))
        answer = result.value
        body = completion_body(cid=completion_id(), model=answer.model, text=answer.text,
                               finish_reason=answer.finish_reason, usage=answer.usage)  # fmt: skip
        self.runner.metrics.gateway_request(stream=False, code=200)
        return json_response(body, headers=_answer_headers(result.provider, result.cost))

    async def _stream_body(self, stream: OpenStream, with_usage: bool) -> AsyncIterator[bytes]:
        """The SSE events of one streamed answer; closed at a ``yield`` if the client leaves."""
        writer = ChunkWriter(completion_id(), stream.model)
        code = 499  # unless the stream runs to its end: the client went away
        try:
            yield writer.role(with_usage=with_usage)
            try:
                async for chunk in stream:
                    yield writer.text(chunk.text, with_usage=with_usage)
            except ProviderError as broke:
                code = 502
                self.runner.metrics.stream_failed(stream.provider, broke.kind.value)
                message = self.runner.redact(f"provider {stream.provider} failed mid-answer: {broke}")
                logger.warning("agent %s: gateway stream: %s", self.runner.agent, message)
                yield writer.error(message, code="provider_stream_failed")
                return
            yield writer.finish(stream.finish_reason, with_usage=with_usage)
            if with_usage and stream.usage is not None:
                yield writer.usage(stream.usage)
            yield writer.done()
            code = 200
        finally:
            if code == 499:  # settles the call with what the provider sent so far
                await stream.aclose()
            self.runner.metrics.gateway_request(stream=True, code=code)

    def _engine_error(self, failed: BudgetExhausted | CallFailed) -> WireError:
        message = self.runner.redact(str(failed))
        if isinstance(failed, BudgetExhausted):
            return WireError(429, message, kind="insufficient_quota", code="budget_exhausted")
        if isinstance(failed, DeadlineExceeded):
            return WireError(504, message, kind="server_error", code="deadline_exceeded")
        return WireError(503, message, kind="server_error", code="all_providers_failed")

    def _refuse(self, refused: WireError, *, stream: bool) -> Response:
        self.runner.metrics.gateway_request(stream=stream, code=refused.status)
        headers = {}
        if refused.status in (429, 503) and refused.code in ("budget_exhausted", "agent_stopped"):
            headers["x-should-retry"] = "false"
        return json_response(refused.body(), refused.status, headers)

    # -- the rest -----------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        data = [
            {"id": p.model, "object": "model", "created": 0, "owned_by": p.name}
            for p in self.runner.config.pool.providers
        ]
        return json_response({"object": "list", "data": data})

    async def _get_state(self, request: Request) -> Response:
        saved = self.runner.checkpointer.last_success
        return json_response(
            {"state": self.runner.custom_state,
             "savedAt": saved.isoformat() if saved is not None else None}
        )  # fmt: skip

    async def _put_state(self, request: Request) -> Response:
        if len(request.body) > MAX_CUSTOM_STATE:
            body = error_body(f"custom state is limited to {MAX_CUSTOM_STATE} bytes",
                              kind="invalid_request_error", code="state_too_large")  # fmt: skip
            return json_response(body, 413)
        try:
            document: Any = json.loads(request.body, parse_constant=_not_json)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict) or "state" not in document:
            body = error_body('the body must be a strict JSON object {"state": ...} (no NaN '
                              f"or Infinity, at most {MAX_STATE_NESTING} levels deep)",
                              kind="invalid_request_error")  # fmt: skip
            return json_response(body, 400)
        if nesting_depth(document["state"], limit=MAX_STATE_NESTING) > MAX_STATE_NESTING:
            body = error_body(f"custom state may nest at most {MAX_STATE_NESTING} levels deep",
                              kind="invalid_request_error", code="state_too_deep")  # fmt: skip
            return json_response(body, 400)
        self.runner.set_custom_state(document["state"])
        saved = await self.runner.checkpointer.save(STATE_SAVE_TIMEOUT)
        return json_response({"saved": saved, "sequence": self.runner.checkpointer.sequence})

    async def _healthz(self, request: Request) -> Response:
        return json_response({"alive": True})

    async def _readyz(self, request: Request) -> Response:
        ready = self.runner.accepting
        return json_response({"ready": ready}, 200 if ready else 503)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _answer_headers(provider: str, cost: float) -> dict[str, str]:
    return {"x-llmagents-provider": provider, "x-llmagents-cost-usd": f"{cost:.8f}"}
