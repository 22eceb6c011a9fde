"""``POST /v1/responses``: OpenAI's Responses API as a front door of the gateway.

The OpenAI Agents SDK and Codex call this API by default. Each request is translated to
the neutral chat model (``responses_translate``) and answered by the gateway's neutral path
(``chat_path``) like a chat completion, so it gets the same model selection, capability
routing, fallback, breakers, budget, cost and checkpoints; the answer goes back as a
``response`` object or as the API's streamed events. A stream falls back between providers
until one has produced its first chunk, then sends its first byte.

Refusals use OpenAI's error shape, as the chat route's do. Requests that need server-side
state (``previous_response_id``, ``store: true``, ...) are 400 with a message saying to
send the whole conversation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmagents.api.work import Complexity
from llmagents.chat import ChatResponse
from llmagents.runner import chat_path
from llmagents.runner.chat_path import ChatCall
from llmagents.runner.openai_chat import json_bytes, refusal_response
from llmagents.runner.responses_answer import response_object
from llmagents.runner.responses_stream import ResponsesStream
from llmagents.runner.responses_translate import parse_responses
from llmagents.runner.web import Request, Response, StreamingResponse

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner


async def handle(runner: Runner, request: Request) -> Response | StreamingResponse:
    return await chat_path.serve(runner, request, _read, refusal_response)


def _read(raw: bytes, complexity: Complexity | None) -> chat_path.FrontCall:
    parsed = parse_responses(raw)
    call = ChatCall(
        parsed.request, model=parsed.wire.model, stream=parsed.stream, complexity=complexity
    )

    def writer(model: str) -> ResponsesStream:
        return ResponsesStream(parsed.wire, model)

    def body(answer: ChatResponse) -> bytes:
        response = response_object(
            parsed.wire,
            text=answer.text,
            tool_calls=answer.tool_calls,
            usage=answer.usage,
            finish_reason=answer.finish_reason,
            model=answer.model,
            reasoning=answer.reasoning,
        )
        return json_bytes(response.document())

    return chat_path.FrontCall(call, writer, body)
