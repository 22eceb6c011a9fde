"""Gateway mode: a local OpenAI-compatible server that routes through the agent's engine.

The agent's own container (any framework, any language) sets ``OPENAI_BASE_URL`` to this
server and gets the pool's fallback, breakers, budget and cost tracking without knowing a
provider. It serves, on the pod's loopback only:

- ``POST /v1/chat/completions`` (``openai_chat``; each protocol's front door is a module
  in ``FRONT_DOORS`` over the neutral ``chat_path``), plain or streamed (server-sent events).
  A stream falls back between providers until one has produced its first chunk, and only
  then sends its first byte; if that provider fails mid-answer the stream ends with an
  OpenAI-style ``{"error": ...}`` event and no ``[DONE]``, which OpenAI's clients raise as
  an error, never a silent 200 with a cut answer. The header ``x-llmagents-complexity``
  (simple, medium, complex) steers tier choice; ``x-llmagents-provider`` and
  ``x-llmagents-cost-usd`` on answers say who answered and what it cost.
- ``POST /v1/responses`` (``front_responses``: OpenAI's Responses API, stateless, the
  default of the OpenAI Agents SDK) and ``POST /v1/messages`` (``front_messages``:
  Anthropic's Messages API, with ``/v1/messages/count_tokens``): the same chat path in
  other protocols' shapes, streams included.
- ``POST /v1/embeddings`` (``front_embeddings``): the pool's embedding models.
- ``GET /v1/models``: what a client may ask for (``routing.selection``): each provider's
  model and name, and the pool's aliases, with the capabilities behind each; and each
  embedding model (capability ``embeddings``).
- ``GET|PUT /v1/checkpoint/state``: the client's own state (any strict JSON, at most
  ``MAX_CUSTOM_STATE`` bytes and ``MAX_STATE_NESTING`` levels deep; 413 and 400 otherwise),
  saved in the runner's checkpoint and returned after restarts. A PUT answers once the
  checkpoint holding it landed (``saved``), or after a bounded wait.
- ``POST /v1/agent/complete``: the agent says its work is done (optional body
  ``{"summary": "..."}``, at most ``MAX_COMPLETION_SUMMARY`` characters). From then on the
  runner takes no call; the answer (200) comes only once a checkpoint holding the completion
  landed, so a runner killed right after still knows it, starts Completed and serves nothing
  paid. The operator then completes the agent and scales it to zero. Repeating it is safe.
- ``/healthz`` and ``/readyz``.

It runs on uvicorn (``web.Server``) rather than aiohttp's server: the gateway is on the path
of every model call, and aiohttp's server alone cost about the whole latency budget per
request (``bench/README.md``). Refusals (``chat_path.Refusal``): a request that is wrong or needs a
capability no provider it may use has is 400, an exhausted budget 429 with
``x-should-retry: false`` (OpenAI's clients then do not retry), no provider answering 503,
a passed call deadline 504, an agent that stopped working (maxRuntime) 503.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmagents.api.status import MAX_COMPLETION_SUMMARY
from llmagents.routing.selection import askable_models
from llmagents.runner import front_embeddings, front_messages, front_responses, openai_chat
from llmagents.runner.checkpoint import nesting_depth
from llmagents.runner.openai_chat import json_response
from llmagents.runner.web import Request, Response, Server, StreamingResponse
from llmagents.wire.openai_chat import error_body

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner

logger = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
MESSAGES_PREFIX = "/v1/messages"
"""Paths under Anthropic's API: the server's own errors there are in Anthropic's shape."""
MAX_CUSTOM_STATE = 512 * 1024
"""Bytes of custom state a client may store; the checkpoint must stay within a ConfigMap."""
MAX_STATE_NESTING = 32
"""Levels of arrays and objects custom state may nest: the checkpoint's encoder and decoder
recurse, and the checkpoint itself must stay within ``checkpoint.MAX_NESTING``."""
STATE_SAVE_TIMEOUT = 5.0
MAX_COMPLETION_BODY = 16 * 1024
"""Bytes of a completion report's body: a summary, not a result store."""
COMPLETION_SAVE_TIMEOUT = 10.0
"""Seconds a completion report waits for its checkpoint before answering 503 (retry)."""


class CompletionReport(BaseModel):
    """The body of ``POST /v1/agent/complete``; unknown fields are refused, so a typo in a
    field name is an error rather than a summary silently lost."""

    model_config = ConfigDict(extra="forbid", strict=True)

    summary: str | None = Field(default=None, max_length=MAX_COMPLETION_SUMMARY)


Route = Callable[[Request], Awaitable[Response | StreamingResponse]]
FrontDoor = Callable[["Runner", Request], Awaitable[Response | StreamingResponse]]
"""A protocol's chat route: reads its request, calls ``chat_path``, writes its answer."""

FRONT_DOORS: dict[str, FrontDoor] = {
    "/v1/chat/completions": openai_chat.handle,
    "/v1/responses": front_responses.handle,
    "/v1/messages": front_messages.handle,
    "/v1/messages/count_tokens": front_messages.count_tokens,
    "/v1/embeddings": front_embeddings.handle,
}
"""The chat routes (POST) and the module serving each; other protocols add theirs here."""


def _server_error(status: int, message: str, path: str) -> Response:
    """An error of the server's own, in the shape of the protocol the path belongs to."""
    return _error(status, message, path)


def _error(status: int, message: str, path: str, *, code: str | None = None,
           headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    """An error answer in the shape of the protocol whose route ``path`` names: Anthropic's
    for ``/v1/messages...``, OpenAI's (with ``code``) for everything else."""
    if path.startswith(MESSAGES_PREFIX):
        return json_response(front_messages.error_for_status(status, message), status, headers)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json_response(error_body(message, kind=kind, code=code), status, headers)


class Gateway:
    """The OpenAI-compatible server of one runner."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._routes: dict[str, dict[str, Route]] = {
            path: {"POST": functools.partial(door, runner)} for path, door in FRONT_DOORS.items()
        }
        self._routes |= {
            "/v1/models": {"GET": self._models},
            "/v1/checkpoint/state": {"GET": self._get_state, "PUT": self._put_state},
            "/v1/agent/complete": {"POST": self._complete},
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
        logger.info(
            "agent %s: gateway listening on http://%s:%d/v1", self.runner.agent, host, self.port
        )

    async def stop(self) -> None:
        await self._server.stop(grace=2.0)

    async def _dispatch(self, request: Request) -> Response | StreamingResponse:
        methods = self._routes.get(request.path)
        if methods is None:
            served = ", ".join(self._routes)
            return _error(404, f"no route for {request.path}; the gateway serves {served}",
                          request.path, code="not_found")  # fmt: skip
        route = methods.get(request.method)
        if route is None:
            allowed = ", ".join(methods)
            return _error(405, f"{request.path} takes {allowed}, not {request.method}",
                          request.path, code="method_not_allowed", headers={"allow": allowed})  # fmt: skip
        tracer = self.runner.engine.tracer
        if tracer is None:
            return await route(request)
        with tracer.incoming(request.headers):  # the caller's traceparent parents the call
            return await route(request)

    # -- the rest -----------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        """Everything a client may send as ``model``: each provider's model and name, and
        each alias of the pool, with what it can do."""
        pool = self.runner.config.pool
        manager = self.runner.engine.manager
        data = []
        for name, owner in askable_models(pool):
            members = self.runner.engine.providers_for(name) or {p.name for p in pool.providers}
            can = set.union(*(set(manager.capabilities(m)) for m in members))
            data.append({"id": name, "object": "model", "created": 0, "owned_by": owner,
                         "providers": sorted(members),
                         "capabilities": sorted(c.value for c in can)})  # fmt: skip
        embedding: dict[str, list[str]] = {}
        for spec in pool.providers:
            if spec.embeddings is not None:
                embedding.setdefault(spec.embeddings.model, []).append(spec.name)
        for model, names in embedding.items():
            data.append({"id": model, "object": "model", "created": 0, "owned_by": names[0],
                         "providers": names, "capabilities": ["embeddings"]})  # fmt: skip
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

    async def _complete(self, request: Request) -> Response:
        """The agent's report that its work is done; 200 once it is durable."""
        if len(request.body) > MAX_COMPLETION_BODY:
            body = error_body(f"a completion report is limited to {MAX_COMPLETION_BODY} bytes; "
                              "store results elsewhere (PUT /v1/checkpoint/state, say)",
                              kind="invalid_request_error", code="completion_too_large")  # fmt: skip
            return json_response(body, 413)
        try:
            report = (CompletionReport.model_validate_json(request.body)
                      if request.body.strip() else CompletionReport())  # fmt: skip
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in error.errors()
            )
            body = error_body('the body must be empty or a JSON object {"summary": "..."} '
                              f"(at most {MAX_COMPLETION_SUMMARY} characters): {problems}",
                              kind="invalid_request_error")  # fmt: skip
            return json_response(body, 400)
        completion = self.runner.complete(report.summary)
        if not await self.runner.checkpointer.save(COMPLETION_SAVE_TIMEOUT):
            # The runner already takes no call; what is missing is the checkpoint.
            body = error_body("the completion is recorded but its checkpoint could not be "
                              "saved yet; send the same request again",
                              kind="server_error", code="completion_not_saved")  # fmt: skip
            return json_response(body, 503)
        self.runner.completion_saved.set()
        return json_response({
            "completed": True,
            "completedAt": completion.completed_at.isoformat(),
            "summary": completion.summary,
        })  # fmt: skip

    async def _healthz(self, request: Request) -> Response:
        return json_response({"alive": True})

    async def _readyz(self, request: Request) -> Response:
        ready = self.runner.accepting
        return json_response({"ready": ready}, 200 if ready else 503)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")
