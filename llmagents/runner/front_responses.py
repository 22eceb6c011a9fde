"""``POST /v1/responses``: OpenAI's Responses API as a front door of the gateway.

The OpenAI Agents SDK and Codex call this API by default. Each request is translated to
the neutral chat model (``responses_translate``) and sent through the agent's engine like a
chat completion, so it gets the same fallback, breakers, budget, cost and checkpoints; the
answer goes back as a ``response`` object or as the API's streamed events. A stream falls
back between providers until one has produced its first chunk, then sends its first byte.

Refusals use OpenAI's error shape, as the chat route's do (an exhausted budget is 429
``insufficient_quota`` with ``x-should-retry: false``; no provider answering is 503; a passed
deadline 504). Requests that need server-side state (``previous_response_id``,
``store: true``, ...) are 400 with a message saying to send the whole conversation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from llmagents.api.work import Complexity
from llmagents.errors import BudgetExhausted, CallFailed, DeadlineExceeded, ProviderError
from llmagents.routing import CallTask
from llmagents.runner.http11 import Request, Response, StreamingResponse
from llmagents.runner.openai_wire import WireError
from llmagents.runner.responses_translate import (
    ResponsesCall,
    ResponsesStream,
    parse_responses,
    response_object,
)

if TYPE_CHECKING:
    from llmagents.runner.engine import OpenStream
    from llmagents.runner.lifecycle import Runner

logger = logging.getLogger(__name__)


def complexity_from(header: str | None) -> Complexity | None:
    """The ``x-llmagents-complexity`` header's tier; ``WireError`` when it names none."""
    if not header:
        return None
    try:
        return Complexity(header.strip().lower())
    except ValueError:
        raise WireError(400, "x-llmagents-complexity must be simple, medium or complex") from None


def engine_refusal(runner: Runner, failed: BudgetExhausted | CallFailed) -> WireError:
    """The OpenAI-shaped refusal of a call the engine could not make."""
    message = runner.redact(str(failed))
    if isinstance(failed, BudgetExhausted):
        return WireError(429, message, kind="insufficient_quota", code="budget_exhausted")
    if isinstance(failed, DeadlineExceeded):
        return WireError(504, message, kind="server_error", code="deadline_exceeded")
    return WireError(503, message, kind="server_error", code="all_providers_failed")


def _json(document: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Response(status, body, headers=headers or {})


class ResponsesRoute:
    """The handler of ``POST /v1/responses`` for one runner."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def __call__(self, request: Request) -> Response | StreamingResponse:
        call: ResponsesCall | None = None
        runner = self.runner
        try:
            if not runner.accepting:
                raise WireError(503, f"agent {runner.agent} is not taking calls: "
                                f"{runner.message or runner.phase.value}",
                                kind="server_error", code="agent_stopped")  # fmt: skip
            complexity = complexity_from(request.headers.get("x-llmagents-complexity"))
            call = parse_responses(request.body)
            task = CallTask.from_messages(call.request.messages, complexity=complexity,
                                          max_output_tokens=call.request.max_tokens)  # fmt: skip
            if call.stream:
                stream = await runner.engine.open_stream(call.request, task)
                return StreamingResponse(
                    self._events(call, stream),
                    headers={"cache-control": "no-cache", "x-llmagents-provider": stream.provider},
                )  # fmt: skip
            result = await runner.engine.complete(call.request, task)
        except WireError as refused:
            return self._refuse(refused, stream=bool(call and call.stream))
        except (BudgetExhausted, CallFailed) as failed:
            return self._refuse(engine_refusal(runner, failed), stream=bool(call and call.stream))
        answer = result.value
        body = response_object(call.wire, text=answer.text, tool_calls=answer.tool_calls,
                               usage=answer.usage, finish_reason=answer.finish_reason,
                               model=answer.model)  # fmt: skip
        runner.metrics.gateway_request(stream=False, code=200)
        return _json(body.document(), headers={"x-llmagents-provider": result.provider,
                                               "x-llmagents-cost-usd": f"{result.cost:.8f}"})  # fmt: skip

    async def _events(self, call: ResponsesCall, stream: OpenStream) -> AsyncIterator[bytes]:
        """The events of one streamed response; closed at a ``yield`` if the client leaves."""
        runner = self.runner
        writer = ResponsesStream(call.wire, stream.model)
        code = 499  # unless the stream runs to its end: the client went away
        try:
            yield writer.start()
            try:
                async for chunk in stream:
                    events = writer.text(chunk.text) if chunk.text else b""
                    for delta in chunk.tool_calls:
                        events += writer.tool_call(delta)
                    if events:
                        yield events
            except ProviderError as broke:
                code = 502
                runner.metrics.stream_failed(stream.provider, broke.kind.value)
                message = runner.redact(f"provider {stream.provider} failed mid-answer: {broke}")
                logger.warning("agent %s: gateway responses stream: %s", runner.agent, message)
                yield writer.failed(message)
                return
            yield writer.finish(usage=stream.usage, finish_reason=stream.finish_reason)
            code = 200
        finally:
            if code == 499:  # settles the call with what the provider sent so far
                await stream.aclose()
            runner.metrics.gateway_request(stream=True, code=code)

    def _refuse(self, refused: WireError, *, stream: bool) -> Response:
        self.runner.metrics.gateway_request(stream=stream, code=refused.status)
        headers = {}
        if refused.status in (429, 503) and refused.code in ("budget_exhausted", "agent_stopped"):
            headers["x-should-retry"] = "false"
        return _json(refused.body(), refused.status, headers)
