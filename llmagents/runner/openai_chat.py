"""The gateway's OpenAI front door: ``POST /v1/chat/completions``.

Reads the full request OpenAI's API takes (tools, ``tool_choice``, ``parallel_tool_calls``,
``response_format``, tool-role messages, image parts, ``seed``, ``stop``,
``max_completion_tokens``) with the shared wire model (``llmagents.wire.openai_chat``),
strictly: a number out of range or not finite, a wrong type (``max_tokens: true``), an
integer too large for any provider or a lone surrogate is a 400 in OpenAI's error shape
naming the field, and no provider is called. Fields the wire model does not name are kept
and sent on to OpenAI-compatible providers. Then the neutral path (``chat_path``) answers,
and this module writes the answer, the stream (``chat.completion.chunk`` events, tool-call
deltas included) or the refusal in OpenAI's shapes.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import to_json

from llmagents.api.work import Complexity
from llmagents.chat import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    Usage,
)
from llmagents.runner import chat_path, reasoning_tags
from llmagents.runner.chat_path import LOGPROBS_UNSERVED, ChatCall, Refusal, RefusalKind
from llmagents.runner.web import Request, Response, StreamingResponse
from llmagents.wire import extras as wire_extras
from llmagents.wire import openai_chat as wire

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner

_ERROR_TYPES = {
    RefusalKind.INVALID_REQUEST: "invalid_request_error",
    RefusalKind.NOT_FOUND: "invalid_request_error",
    RefusalKind.BUDGET: "insufficient_quota",
    RefusalKind.UNAVAILABLE: "server_error",
    RefusalKind.DEADLINE: "server_error",
}
_LEGACY = ("functions", "function_call")
# Named fields the neutral model has no place for: passed on to OpenAI-compatible providers.
_OPENAI_ONLY = ("presence_penalty", "frequency_penalty", "user")


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def json_response(document: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    return Response(status, json_bytes(document), headers=headers if headers is not None else {})


def refusal_response(runner: Runner, refusal: Refusal, *, stream: bool) -> Response:
    """A refusal in OpenAI's error shape; ``x-should-retry: false`` when retrying is futile."""
    runner.metrics.gateway_request(stream=stream, code=refusal.status)
    body = wire.error_body(refusal.message, kind=_ERROR_TYPES[refusal.kind],
                           code=refusal.code, param=refusal.param)  # fmt: skip
    headers = {} if refusal.retry else {"x-should-retry": "false"}
    return json_response(body, refusal.status, headers)


async def handle(runner: Runner, request: Request) -> Response | StreamingResponse:
    return await chat_path.serve(runner, request, _read, refusal_response)


def _read(raw: bytes, complexity: Complexity | None) -> chat_path.FrontCall:
    parsed = parse(raw)
    call = ChatCall(
        to_chat(parsed), model=parsed.model, stream=bool(parsed.stream), complexity=complexity
    )

    def writer(model: str) -> ChunkWriter:
        return ChunkWriter(completion_id(), model, with_usage=parsed.include_usage)

    def body(answer: ChatResponse) -> bytes:
        return completion(answer, cid=completion_id())

    return chat_path.FrontCall(call, writer, body)


# -- request ------------------------------------------------------------------------------------


def parse(raw: bytes) -> wire.ChatCompletionRequest:
    """The request, validated; ``Refusal`` (400) naming the first wrong field."""
    try:
        request = wire.ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as invalid:
        raise _invalid(invalid) from None
    for legacy in _LEGACY:
        # Passed on, these would reach OpenAI-compatible providers only and vanish on the
        # way to the others: the answer would silently call no function.
        if (request.__pydantic_extra__ or {}).get(legacy) is not None:
            raise Refusal(400, f"'{legacy}' is OpenAI's deprecated form of function calling; "
                          "send 'tools' and 'tool_choice' instead", param=legacy)  # fmt: skip
    unserved = _unserved_output(request.__pydantic_extra__ or {})
    if unserved is not None:
        raise Refusal(400, unserved[1], param=unserved[0], code="unsupported_parameter")
    return request


def _unserved_output(extra: dict[str, Any]) -> tuple[str, str] | None:
    """(param, message) for an answer the client asks for that no answer through the gateway
    can hold (the neutral answer has no log probabilities and no audio): served, the client
    would get ``logprobs: null`` or no audio, silently. What SDKs send by default
    (``logprobs: false``, ``top_logprobs: null``, ``modalities: ["text"]``) is taken."""
    top = extra.get("top_logprobs")
    if extra.get("logprobs") is True or (type(top) is int and top > 0):
        return "logprobs", f"{LOGPROBS_UNSERVED}; leave out logprobs and top_logprobs"
    modalities = extra.get("modalities")
    if (isinstance(modalities, list) and "audio" in modalities) or extra.get("audio"):
        return "modalities", ("audio output is not served by the gateway: its answers are "
                              'text; send modalities ["text"] or leave it out')  # fmt: skip
    return None


def _invalid(invalid: ValidationError) -> Refusal:
    message, param = wire.describe(invalid)
    return Refusal(400, message, param=param)


def _user_content(content: str | list[wire.UserPart]) -> str | tuple[ContentPart, ...]:
    if isinstance(content, str):
        return content
    parts: list[ContentPart] = []
    for part in content:
        if isinstance(part, wire.TextPart):
            parts.append(TextPart(part.text))
        else:
            parts.append(ImagePart(part.image_url.url, part.image_url.detail))
    return tuple(parts)


def _message(message: Any) -> Message:
    if isinstance(message, wire.SystemMessage):
        return Message(Role.SYSTEM, wire.content_text(message.content))
    if isinstance(message, wire.UserMessage):
        return Message(Role.USER, _user_content(message.content), name=message.name)
    if isinstance(message, wire.ToolMessage):
        return Message(
            Role.TOOL, wire.content_text(message.content), tool_call_id=message.tool_call_id
        )
    calls = tuple(
        ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
    )
    sent = (message.__pydantic_extra__ or {}).get("reasoning_details")
    return Message(Role.ASSISTANT, wire.content_text(message.content), tool_calls=calls,
                   reasoning=reasoning_tags.from_details(sent) if sent else ())  # fmt: skip


def _tool_choice(choice: wire.ToolChoice | None) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, wire.NamedToolChoice):
        return ToolChoice(ToolChoiceMode.REQUIRED, choice.function.name)
    return ToolChoice(ToolChoiceMode(choice))


def _response_format(fmt: Any) -> ResponseFormat | None:
    if fmt is None or isinstance(fmt, wire.TextFormat):
        return None
    if isinstance(fmt, wire.JsonObjectFormat):
        return ResponseFormat(ResponseFormatType.JSON_OBJECT)
    spec = fmt.json_schema
    return ResponseFormat(ResponseFormatType.JSON_SCHEMA, schema=spec.schema_ or {},
                          name=spec.name, strict=spec.strict)  # fmt: skip


def to_chat(request: wire.ChatCompletionRequest) -> ChatRequest:
    """The neutral request; fields it does not name ride along for OpenAI-compatible providers."""
    passthrough = wire_extras(request)
    for name in _OPENAI_ONLY:
        value = getattr(request, name)
        if value is not None:
            passthrough[name] = value
    return ChatRequest(
        [_message(m) for m in request.messages],
        max_tokens=request.output_limit,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop_list,
        seed=request.seed,
        tools=tuple(
            Tool(
                t.function.name,
                t.function.description,
                t.function.parameters or {"type": "object", "properties": {}},
                t.function.strict,
            )
            for t in request.tools or ()
        ),
        tool_choice=_tool_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls,
        response_format=_response_format(request.response_format),
        reasoning_effort=(
            ReasoningEffort(request.reasoning_effort) if request.reasoning_effort else None
        ),
        passthrough={"openai": passthrough} if passthrough else {},
    )


# -- answers ------------------------------------------------------------------------------------


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _usage_data(usage: Usage) -> dict[str, Any]:
    """``wire.CompletionUsage`` as plain data: a whole answer writes it as it is, a stream's
    last chunk validates it into the model."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def usage_of(usage: Usage) -> wire.CompletionUsage:
    return wire.CompletionUsage.model_validate(_usage_data(usage))


def completion(answer: ChatResponse, *, cid: str) -> bytes:
    """A whole answer's body: ``wire.ChatCompletion`` exactly as its model writes it, every
    field in its place, written from plain data (building the models first cost several
    times the writing)."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in answer.tool_calls
    ]
    message = {
        "role": "assistant",
        "content": answer.text if answer.text or not calls else None,
        "refusal": None,
        "tool_calls": calls or None,
        "reasoning_content": answer.reasoning_text or None,
        "reasoning_details": reasoning_tags.details(answer.reasoning) or None,
    }
    return to_json({
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": answer.finish_reason or "stop"}],
        "usage": _usage_data(answer.usage),
        "system_fingerprint": None,
    })  # fmt: skip


class ChunkWriter:
    """A stream's ``chat.completion.chunk`` events (``chat_path.StreamWriter``)."""

    def __init__(self, cid: str, model: str, *, with_usage: bool) -> None:
        self._id, self._created, self._model = cid, int(time.time()), model
        self._with_usage = with_usage
        self._saw_tool_call = False
        self._block = 0
        """The ``index`` of the reasoning block being streamed (``reasoning_details``)."""

    def _event(self, choices: list[wire.ChunkChoice],
               usage: wire.CompletionUsage | None = None) -> bytes:  # fmt: skip
        chunk = wire.ChatCompletionChunk(id=self._id, created=self._created, model=self._model,
                                         choices=choices, usage=usage)  # fmt: skip
        exclude = None if self._with_usage else {"usage"}
        return b"data: " + chunk.model_dump_json(exclude=exclude).encode() + b"\n\n"

    def start(self) -> bytes:
        return self._event([wire.ChunkChoice(delta=wire.Delta(role="assistant", content=""))])

    def chunk(self, chunk: StreamChunk) -> bytes:
        calls = None
        if chunk.tool_calls:
            self._saw_tool_call = True
            calls = [
                wire.ToolCallDelta(
                    index=d.index, id=d.id, type="function" if d.id else None,
                    function=wire.FunctionDelta(name=d.name, arguments=d.arguments),
                )
                for d in chunk.tool_calls
            ]  # fmt: skip
        details = self._details(chunk)
        if not (chunk.text or calls or details):
            return b""
        delta = wire.Delta(content=chunk.text or None, tool_calls=calls,
                           reasoning_content=chunk.reasoning or None,
                           reasoning_details=details)  # fmt: skip
        return self._event([wire.ChunkChoice(delta=delta)])

    def _details(self, chunk: StreamChunk) -> list[Any] | None:
        """OpenRouter's streamed ``reasoning_details``: text pieces of the current block,
        then its tagged signature (or a redacted block whole), which ends it."""
        if not (chunk.reasoning or chunk.reasoning_end):
            return None
        details: list[Any] = []
        if chunk.reasoning:
            details.append({"type": reasoning_tags.TEXT_DETAIL, "text": chunk.reasoning,
                            "index": self._block})  # fmt: skip
        end = chunk.reasoning_end
        if end is not None:
            [last] = reasoning_tags.details([end])
            if last["type"] == reasoning_tags.TEXT_DETAIL:
                last["text"] = ""  # its text came in the pieces before
            details.append({**last, "index": self._block})
            self._block += 1
        return details

    def end(self, finish_reason: str | None, usage: Usage | None) -> bytes:
        reason = finish_reason or ("tool_calls" if self._saw_tool_call else "stop")
        data = self._event([wire.ChunkChoice(finish_reason=reason)])
        if self._with_usage and usage is not None:
            data += self._event([], usage_of(usage))
        return data + wire.STREAM_DONE

    def error(self, message: str) -> bytes:
        body = wire.error_body(message, kind="server_error", code="provider_stream_failed")
        return wire.sse(body)
