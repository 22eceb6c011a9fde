"""``POST /v1/messages``: Anthropic's Messages API as a front door of the gateway.

An agent written against Anthropic's SDK sets ``ANTHROPIC_BASE_URL`` to the runner's gateway
(without ``/v1``: the SDK adds it) and gets the pool's fallback, breakers, budget, cost and
checkpoints like an OpenAI client does: each request is translated to the neutral chat
model (``messages_translate``) and answered by ``chat_path``, by whichever provider the pool
picks, Anthropic or not. Streams send Anthropic's events; a stream falls back between
providers until one has produced its first chunk.

Refusals use Anthropic's error shape (``{"type": "error", "error": {"type", "message"}}``)
with the statuses of ``chat_path``; an exhausted budget is 429 with ``x-should-retry:
false``, which Anthropic's SDK honours. ``POST /v1/messages/count_tokens`` answers the
gateway's estimate of a request's input tokens (about four characters a token), the figure
budget checks use; the provider's own tokenizer may count differently.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from llmagents.api.work import Complexity
from llmagents.chat import ChatResponse
from llmagents.routing import CallTask
from llmagents.runner import chat_path
from llmagents.runner.chat_path import ChatCall, Refusal, RefusalKind
from llmagents.runner.messages_stream import MessagesStream
from llmagents.runner.messages_translate import message_object, parse_messages
from llmagents.runner.openai_chat import json_response
from llmagents.runner.web import Request, Response, StreamingResponse

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner

_ERROR_TYPES = {
    RefusalKind.INVALID_REQUEST: "invalid_request_error",
    RefusalKind.NOT_FOUND: "not_found_error",
    RefusalKind.BUDGET: "rate_limit_error",
    RefusalKind.UNAVAILABLE: "api_error",
    RefusalKind.DEADLINE: "timeout_error",
}


_STATUS_TYPES = {404: "not_found_error", 413: "request_too_large", 408: "timeout_error",
                 504: "timeout_error", 429: "rate_limit_error"}  # fmt: skip
"""Anthropic's error type for a status the server answers before a route reads the request
(and for routes and methods it does not serve); other 4xx are ``invalid_request_error``,
5xx ``api_error``."""


def error_document(error_type: str, message: str) -> dict[str, Any]:
    """An error answer as Anthropic writes it."""
    return {"type": "error", "error": {"type": error_type, "message": message},
            "request_id": "req_" + secrets.token_hex(12)}  # fmt: skip


def error_for_status(status: int, message: str) -> dict[str, Any]:
    """An error of the server itself (413, 404...) in Anthropic's shape."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    return error_document(_STATUS_TYPES.get(status, default), message)


def refusal_response(runner: Runner, refusal: Refusal, *, stream: bool) -> Response:
    """A refusal in Anthropic's error shape."""
    runner.metrics.gateway_request(stream=stream, code=refusal.status)
    body = error_document(_ERROR_TYPES[refusal.kind], refusal.message)
    headers = {} if refusal.retry else {"x-should-retry": "false"}
    return json_response(body, refusal.status, headers)


async def handle(runner: Runner, request: Request) -> Response | StreamingResponse:
    return await chat_path.serve(runner, request, _read, refusal_response)


def _read(raw: bytes, complexity: Complexity | None) -> chat_path.FrontCall:
    parsed = parse_messages(raw)
    call = ChatCall(
        parsed.request, model=parsed.wire.model, stream=parsed.stream, complexity=complexity
    )

    def writer(model: str) -> MessagesStream:
        estimate = CallTask.from_messages(parsed.request.messages).input_tokens
        return MessagesStream(model, input_estimate=estimate)

    def body(answer: ChatResponse) -> bytes:
        message = message_object(
            answer.text,
            answer.tool_calls,
            usage=answer.usage,
            finish_reason=answer.finish_reason,
            model=answer.model,
            reasoning=answer.reasoning,
        )
        return message.model_dump_json().encode()

    return chat_path.FrontCall(call, writer, body)


async def count_tokens(runner: Runner, request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the estimate of the request's input tokens."""
    raw = request.body
    try:
        document = json.loads(raw)
        if isinstance(document, dict):  # count_tokens takes no max_tokens; the model needs one
            document.setdefault("max_tokens", 1)
            raw = json.dumps(document).encode()
        parsed = parse_messages(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        return refusal_response(
            runner,
            Refusal(400, "the request body is not valid JSON, or nests too deep"),
            stream=False,
        )
    except Refusal as refusal:
        return refusal_response(runner, refusal, stream=False)
    task = CallTask.from_messages(parsed.request.messages)
    return json_response({"input_tokens": task.input_tokens})
