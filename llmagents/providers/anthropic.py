"""Anthropic's Messages API (``POST /v1/messages``), plain and streamed, tools included.

Translation from the neutral chat model (``llmagents.wire.anthropic`` holds the shapes):

- system messages go to the top-level ``system`` field (the API has no system role);
- text and images become ``text`` and ``image`` blocks (a ``data:`` URL as a base64 source,
  any other URL as a URL source);
- an assistant's tool calls become ``tool_use`` blocks (arguments parsed into ``input``),
  and tool results ``tool_result`` blocks in the next user turn; consecutive results of
  parallel calls share one user turn, as the API requires. Ids that do not fit Anthropic's
  pattern are replaced by stable stand-ins (``tool_ids``);
- ``tool_choice`` auto / required / a named function / none become ``auto`` / ``any`` /
  ``tool`` / ``none``, and ``parallel_tool_calls: false`` ``disable_parallel_tool_use``;
- structured output (``response_format`` json_schema or json_object) is a forced tool
  whose input schema is the requested schema; its ``tool_use`` input comes back as the
  answer's text (JSON), with finish reason ``stop``, in whole answers and streams alike.

Answers: ``text`` blocks joined, ``tool_use`` blocks as tool calls, stop reasons mapped
(``tool_use`` → ``tool_calls``). Usage is ``usage.input_tokens`` (plus cache writes and
reads, which were sent too) and ``output_tokens``; a stream reports input in
``message_start`` and the running output total in ``message_delta``, and its tool inputs
as ``input_json_delta`` pieces, relayed as tool-call argument deltas. Errors carry
``{"type": "error", "error": {"type": ...}}`` and the error type decides the taxonomy, so
that 529 ``overloaded_error`` stays distinct from 429 ``rate_limit_error``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import ValidationError

from llmagents.chat import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    ResponseFormatType,
    Role,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    ToolChoiceMode,
    Usage,
)
from llmagents.errors import (
    AuthFailed,
    MalformedResponse,
    ModelNotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    ServerError,
)
from llmagents.providers import tool_ids
from llmagents.providers.base import ProviderAdapter
from llmagents.providers.mapping import (
    Headers,
    body_excerpt,
    body_json,
    decode_json,
    error_for_status,
    missing,
    refused_request,
    retry_after_seconds,
    short,
)
from llmagents.providers.sse import SseEvent
from llmagents.wire import anthropic as wire

ANTHROPIC_VERSION = wire.VERSION
JSON_TOOL = "json_answer"
"""The forced tool that carries structured output (a tool name the client's may not take:
a client tool of the same name is left as is and the answer read as a tool call)."""
DEFAULT_MAX_TOKENS = 4096
"""The API requires ``max_tokens``; used when the request leaves it open."""

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_TYPES: dict[str, type[ProviderError]] = {
    "overloaded_error": Overloaded,
    "rate_limit_error": RateLimited,
    "authentication_error": AuthFailed,
    "permission_error": AuthFailed,
    "billing_error": AuthFailed,
    "not_found_error": ModelNotFound,
    "invalid_request_error": RequestRefused,
    "request_too_large": RequestRefused,
    "api_error": ServerError,
    "timeout_error": ProviderTimeout,
}


class AnthropicAdapter(ProviderAdapter):
    """Claude models through the Messages API."""

    protocol = "anthropic"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def _endpoint(self, *, stream: bool) -> str:
        return "/messages" if self.base_url.endswith("/v1") else "/v1/messages"

    def _models_endpoint(self) -> str:
        return "/models" if self.base_url.endswith("/v1") else "/v1/models"

    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = dict(request.passthrough.get("anthropic", ()))
        system = [m.text for m in request.messages if m.role is Role.SYSTEM]
        payload["model"] = self.model
        payload["max_tokens"] = (
            DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
        )
        payload["messages"] = _messages(request.messages)
        if system:
            payload["system"] = "\n\n".join(system)
        if request.temperature is not None:
            # Anthropic's range is [0, 1], OpenAI's [0, 2]; both default to 1, so the
            # common values mean the same and higher ones are capped.
            payload["temperature"] = min(request.temperature, 1.0)
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop_sequences"] = request.stop
        _tools(payload, request)
        if stream:
            payload["stream"] = True
        return payload

    def _parse_answer(self, data: Any) -> ChatResponse:
        try:
            answer = wire.Message.model_validate(data)
        except ValidationError:
            raise missing("content, usage or stop_reason", provider=self.name) from None
        text = "".join(b.text for b in answer.content if isinstance(b, wire.AnswerText))
        calls = [b for b in answer.content if isinstance(b, wire.AnswerToolUse)]
        finish = _finish(answer.stop_reason)
        if len(calls) == 1 and calls[0].name == JSON_TOOL:
            text, calls, finish = json.dumps(calls[0].input), [], "stop"
        return ChatResponse(
            text=text,
            usage=_usage(answer.usage),
            model=answer.model or self.model,
            finish_reason=finish,
            provider=self.name,
            tool_calls=tuple(
                ToolCall(c.id, c.name, json.dumps(c.input, separators=(",", ":"))) for c in calls
            ),
        )

    def _stream_decoder(self) -> _AnthropicStream:
        return _AnthropicStream(self.name)

    def _map_error(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        retry_after = retry_after_seconds(headers)
        data = body_json(body)
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return error_for_status(
                status, body_excerpt(body), provider=self.name, retry_after=retry_after
            )
        return _error_from_body(
            error, data, status=status, retry_after=retry_after, provider=self.name
        )


def _error_from_body(
    error: dict[str, Any],
    data: dict[str, Any],
    *,
    status: int | None,
    retry_after: float | None,
    provider: str,
) -> ProviderError:
    kind = str(error.get("type", ""))
    message = f"{kind}: {short(error.get('message', ''))}"
    if data.get("request_id"):
        message += f" (request_id {data['request_id']})"
    cls = _ERROR_TYPES.get(kind)
    if cls is None:
        if status is None:
            return ServerError(message, provider=provider)
        return error_for_status(status, message, provider=provider, retry_after=retry_after)
    if cls is RequestRefused:
        return refused_request(message, provider=provider, status=status)
    return cls(message, provider=provider, status_code=status, retry_after=retry_after)


def _usage(raw: wire.Usage | wire.DeltaUsage) -> Usage:
    # Cached prompt tokens are reported apart from input_tokens; they were still sent, so the
    # budget counts them as input rather than forgetting them.
    read = raw.cache_read_input_tokens or 0
    written = raw.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=(raw.input_tokens or 0) + written + read,
        output_tokens=raw.output_tokens or 0,
        cached_input_tokens=read,
        cache_write_input_tokens=written,
    )


def _content(message: Message) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            inline = part.data_url_parts()
            if inline is not None:
                media_type, data = inline
                source: dict[str, Any] = {
                    "type": "base64", "media_type": media_type,
                    "data": base64.b64encode(data).decode(),
                }  # fmt: skip
            else:
                source = {"type": "url", "url": part.url}
            blocks.append({"type": "image", "source": source})
        elif part.text:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments as the object ``tool_use.input`` must be."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {"arguments": text}  # what the model wrote, kept rather than dropped
    return value if isinstance(value, dict) else {"value": value}


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Turns in Anthropic's shape: tool results (and what follows them) in one user turn."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            continue
        if message.role is Role.TOOL:
            role = "user"
            blocks = [{"type": "tool_result", "tool_use_id": tool_ids.fit(message.tool_call_id
                                                                          or ""),
                       "content": message.text}]  # fmt: skip
        elif message.role is Role.ASSISTANT:
            role = "assistant"
            blocks = _content(message) + [
                {"type": "tool_use", "id": tool_ids.fit(c.id), "name": c.name,
                 "input": _arguments(c.arguments)}
                for c in message.tool_calls
            ]  # fmt: skip
        else:
            role, blocks = "user", _content(message)
        if not blocks:
            continue  # the API refuses empty turns; an empty message says nothing anyway
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _tools(payload: dict[str, Any], request: ChatRequest) -> None:
    """``tools`` and ``tool_choice``, with structured output as a forced tool."""
    tools = [
        {"name": t.name, "input_schema": t.parameters, **({"description": t.description}
                                                          if t.description else {})}
        for t in request.tools
    ]  # fmt: skip
    choice: dict[str, Any] | None = None
    if request.tool_choice is not None:
        mode = request.tool_choice.mode
        if request.tool_choice.name:
            choice = {"type": "tool", "name": request.tool_choice.name}
        elif mode is ToolChoiceMode.REQUIRED:
            choice = {"type": "any"}
        elif mode is ToolChoiceMode.NONE:
            choice = {"type": "none"}
        else:
            choice = {"type": "auto"}
    fmt = request.response_format
    if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        schema = fmt.schema if fmt.type is ResponseFormatType.JSON_SCHEMA else None
        tools.append({
            "name": JSON_TOOL,
            "description": "Give the answer by calling this tool with it as the input.",
            # Anthropic wants an object schema; OpenAI's structured outputs do too.
            "input_schema": {"type": "object", **(schema or {})},
        })  # fmt: skip
        if not request.tools:
            choice = {"type": "tool", "name": JSON_TOOL}
    if request.parallel_tool_calls is False and choice is not None and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    elif request.parallel_tool_calls is False and tools and choice is None:
        choice = {"type": "auto", "disable_parallel_tool_use": True}
    if tools:
        payload["tools"] = tools
    if choice is not None:
        payload["tool_choice"] = choice


def _finish(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH.get(str(stop_reason), str(stop_reason))


class _AnthropicStream:
    """message_start → content_block_* (text_delta, input_json_delta) → message_delta →
    message_stop. Tool-use blocks are numbered in the order they start, as OpenAI numbers
    the tool calls of a stream; the forced JSON tool's input is relayed as text."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None
        self.stop_reason: object = None
        self._calls: dict[int, int] = {}
        """Content block index → tool-call index."""
        self._json_block: int | None = None

    def feed(self, event: SseEvent) -> StreamChunk | None:
        kind = event.event
        if kind in ("ping", "content_block_stop"):
            return None
        data = decode_json(event.data, provider=self.provider, what=f"{kind} event")
        try:
            if kind == "content_block_delta":
                return self._delta(wire.ContentBlockDelta.model_validate(data))
            if kind == "content_block_start":
                return self._start(wire.ContentBlockStart.model_validate(data))
            if kind == "message_start":
                self.usage = _usage(wire.MessageStart.model_validate(data).message.usage)
            elif kind == "message_delta":
                delta = wire.MessageDelta.model_validate(data)
                self.stop_reason = delta.delta.stop_reason or self.stop_reason
                self._update_usage(delta.usage)
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                raise _error_from_body(
                    data["error"], data, status=None, retry_after=None, provider=self.provider
                )
        except (KeyError, TypeError, AttributeError, ValueError, ValidationError):
            raise MalformedResponse(
                f"{kind} event lacks its documented fields", provider=self.provider
            ) from None
        return None

    def _start(self, start: wire.ContentBlockStart) -> StreamChunk | None:
        block = start.content_block
        if not isinstance(block, wire.AnswerToolUse):
            return None
        if block.name == JSON_TOOL:
            self._json_block = start.index
            return None
        index = self._calls[start.index] = len(self._calls)
        return StreamChunk(tool_calls=(ToolCallDelta(index, block.id, block.name),))

    def _delta(self, event: wire.ContentBlockDelta) -> StreamChunk | None:
        delta = event.delta
        if isinstance(delta, wire.TextDelta):
            return StreamChunk(text=delta.text) if delta.text else None
        if not isinstance(delta, wire.InputJsonDelta) or not delta.partial_json:
            return None
        if event.index == self._json_block:
            return StreamChunk(text=delta.partial_json)
        index = self._calls.get(event.index)
        if index is None:
            raise ValueError("input_json_delta for a block that is no tool_use")
        return StreamChunk(tool_calls=(ToolCallDelta(index, arguments=delta.partial_json),))

    def _update_usage(self, raw: wire.DeltaUsage) -> None:
        if self.usage is None:
            raise MalformedResponse("message_delta before message_start", provider=self.provider)
        # output_tokens in message_delta is the running total, not an increment.
        if raw.output_tokens is not None:
            self.usage.output_tokens = raw.output_tokens
        if raw.input_tokens is not None:
            counted = _usage(raw)
            self.usage = Usage(counted.input_tokens, self.usage.output_tokens,
                               counted.cached_input_tokens)  # fmt: skip

    def finish(self) -> StreamChunk:
        if not self.done:
            raise MalformedResponse("stream ended before message_stop", provider=self.provider)
        if self.usage is None:
            raise missing("message_start usage", provider=self.provider)
        finish = _finish(self.stop_reason)
        if self._json_block is not None and not self._calls:
            finish = "stop"
        return StreamChunk(usage=self.usage, finish_reason=finish)
