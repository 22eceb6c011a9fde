"""OpenAI-compatible chat completions (``POST {base}/chat/completions``).

One adapter serves OpenAI, OpenRouter, vLLM, Ollama and the agent's own ONNX sidecar; the base
URL usually ends in ``/v1``. Streams are ``data:`` lines of ``chat.completion.chunk`` objects
ended by ``data: [DONE]``; with ``stream_options.include_usage`` the last chunk before it has
empty ``choices`` and the request's ``usage``. A server that ignores that option streams no
usage at all: then the final chunk's ``usage`` is ``None`` rather than an invented count.

Error bodies differ between servers — OpenAI's ``{"error": {"message", "type", "param",
"code"}}``, OpenRouter's numeric ``error.code``, older vLLM's top-level ``{"object": "error"}``
— so the HTTP status decides first and the body only sharpens it.

The protocol is the gateway's own, so translation is a pass-through: tools, ``tool_choice``,
``parallel_tool_calls``, ``response_format``, tool messages, image parts, ``seed`` and
``reasoning_effort`` go out as the neutral model holds them (the effort, to OpenRouter, as
its ``reasoning.effort``), and fields an OpenAI client sent that the neutral model does not
name (``logprobs``, ``metadata``...) go out unchanged. Tool-call ids from
other providers longer than OpenAI's 40 characters are replaced by stable stand-ins
(``tool_ids``). Answers' and chunks' shapes are ``llmagents.wire.openai_chat``'s.

Reasoning is read from OpenRouter's ``reasoning_details`` blocks when an answer has them
(``reasoning_details``), else from ``reasoning_content`` or ``reasoning`` (vLLM, DeepSeek).
Later turns carry this provider's own signed and encrypted blocks back as
``reasoning_details`` (OpenRouter wants them; another provider's never go); unsigned
reasoning goes back nowhere (vLLM and DeepSeek want none).

The output limit goes out as ``max_completion_tokens`` to OpenAI itself (and Azure OpenAI),
where ``max_tokens`` is deprecated and refused by the reasoning and newer models, and as
``max_tokens`` to every other server, since older compatible servers read only that.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from llmagents.chat import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Reasoning,
    ReasoningEffort,
    ResponseFormatType,
    Role,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmagents.errors import (
    AuthFailed,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
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
    retry_after_seconds,
    short,
)
from llmagents.providers.reasoning_details import (
    DetailsStream,
    Provenance,
    read_details,
    write_details,
)
from llmagents.providers.sse import SseEvent
from llmagents.wire import openai_chat as wire

logger = logging.getLogger(__name__)

MAX_TOOL_CALL_ID = 40
"""OpenAI refuses longer tool-call ids in a conversation's history."""


OPENROUTER_HOST = "openrouter.ai"


class OpenAIAdapter(ProviderAdapter):
    """Any server that speaks OpenAI's chat completions."""

    protocol = "openai"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        host = self._chat_urls[False].host or ""
        self.openrouter = host == OPENROUTER_HOST or host.endswith("." + OPENROUTER_HOST)
        """OpenRouter's API: the effort goes in its ``reasoning`` object, which it turns
        into each model's own control."""
        self._provenance = Provenance()

    @property
    def _limit_field(self) -> str:
        host = self._chat_urls[False].host or ""
        official = host == "api.openai.com" or host.endswith(".openai.azure.com")
        return "max_completion_tokens" if official else "max_tokens"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def _endpoint(self, *, stream: bool) -> str:
        return "/chat/completions"

    def _models_endpoint(self) -> str:
        return "/models"

    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        # What an OpenAI client sent that the neutral model does not name goes first, so
        # that the fields translated here always win.
        payload: dict[str, Any] = dict(request.passthrough.get("openai", ()))
        payload["model"] = self.model
        payload["messages"] = [self._message(m) for m in request.messages]
        if request.max_tokens is not None:
            payload[self._limit_field] = request.max_tokens
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop"] = request.stop
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.tools:
            payload["tools"] = [
                {"type": "function", "function": _function(t.name, t.description, t.parameters,
                                                           t.strict)}
                for t in request.tools
            ]  # fmt: skip
        choice = request.tool_choice
        if choice is not None and request.tools:  # the API refuses one without tools
            payload["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if choice.name
                else choice.mode.value
            )
        if request.reasoning_effort is not None:
            self._effort(payload, request.reasoning_effort)
        if request.parallel_tool_calls is not None and request.tools:
            payload["parallel_tool_calls"] = request.parallel_tool_calls
        fmt = request.response_format
        if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
            if fmt.type is ResponseFormatType.JSON_OBJECT:
                payload["response_format"] = {"type": "json_object"}
            else:
                schema: dict[str, Any] = {"name": fmt.name or "answer", "schema": fmt.schema or {}}
                if fmt.strict is not None:
                    schema["strict"] = fmt.strict
                payload["response_format"] = {"type": "json_schema", "json_schema": schema}
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _message(self, message: Message) -> dict[str, Any]:
        """One message; an assistant turn with this provider's own signed or encrypted
        reasoning (OpenRouter's ``reasoning_details``) carries it back."""
        out = _message(message)
        if message.reasoning:
            details = write_details(
                message.reasoning, provider=self.name, provenance=self._provenance
            )
            if details:
                out["reasoning_details"] = details
        return out

    def _effort(self, payload: dict[str, Any], effort: ReasoningEffort) -> None:
        """``reasoning_effort``, or OpenRouter's ``reasoning.effort`` (kept beside what else
        the client put in its ``reasoning``; OpenRouter takes an effort or a ``max_tokens``,
        never both)."""
        if not self.openrouter:
            payload["reasoning_effort"] = effort.value
            return
        asked = payload.get("reasoning")
        kept = (
            {k: v for k, v in asked.items() if k != "max_tokens"} if isinstance(asked, dict) else {}
        )
        payload["reasoning"] = {**kept, "effort": effort.value}

    def _answer_of(self, body: bytes) -> ChatResponse:
        """The answer read into its model in one pass over its bytes (no dict in between);
        a body that is not a plain answer (an error, a body in UTF-16...) goes the way of
        ``_parse_answer``, which tells what is wrong with it."""
        try:
            answer = wire.ChatCompletion.model_validate_json(body)
        except ValidationError:
            return self._parse_answer(decode_json(body, provider=self.name))
        extra = answer.__pydantic_extra__
        if extra and isinstance(extra.get("error"), dict):
            return self._parse_answer(decode_json(body, provider=self.name))
        return self._answer(answer)

    def _parse_answer(self, data: Any) -> ChatResponse:
        if isinstance(data, dict) and _error_of(data) is not None:
            raise _error_from_body(data, status=None, retry_after=None, provider=self.name)
        try:
            answer = wire.ChatCompletion.model_validate(data)
        except ValidationError:
            raise missing("choices[0].message", provider=self.name) from None
        return self._answer(answer)

    def _answer(self, answer: wire.ChatCompletion) -> ChatResponse:
        if not answer.choices:
            raise missing("choices[0].message", provider=self.name)
        choice = answer.choices[0]
        if answer.usage is None:
            raise missing("usage", provider=self.name)
        message = choice.message
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
        )
        if message.reasoning_details:
            reasoning = read_details(message.reasoning_details, provider=self.name,
                                     remember=self._provenance.remember)  # fmt: skip
        else:
            thought = message.reasoning_text
            reasoning = (Reasoning(thought, provider=self.name),) if thought else ()
        return ChatResponse(
            text=message.content or "",
            usage=_usage(answer.usage),
            model=answer.model or self.model,
            finish_reason=choice.finish_reason,
            provider=self.name,
            tool_calls=calls,
            reasoning=reasoning,
        )

    def _stream_decoder(self) -> _OpenAIStream:
        return _OpenAIStream(DetailsStream(self.name, self._provenance.remember))

    def _map_error(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        retry_after = retry_after_seconds(headers)
        data = body_json(body)
        if not isinstance(data, dict) or _error_of(data) is None:
            return error_for_status(
                status, body_excerpt(body), provider=self.name, retry_after=retry_after
            )
        return _error_from_body(data, status=status, retry_after=retry_after, provider=self.name)


def _error_of(data: dict[str, Any]) -> dict[str, Any] | None:
    error = data.get("error")
    if isinstance(error, dict):
        return error
    if data.get("object") == "error":
        return data
    return None


def _error_from_body(
    data: dict[str, Any], *, status: int | None, retry_after: float | None, provider: str
) -> ProviderError:
    error = _error_of(data) or {}
    code = error.get("code")
    if status is None and isinstance(code, int):
        status = code
    label = error.get("type") or code or "error"
    message = f"{label}: {short(error.get('message', ''))}"
    if code == "insufficient_quota":
        # A 429 that no wait cures: the account is out of credit.
        return AuthFailed(message, provider=provider, status_code=status)
    if code in ("invalid_api_key", "invalid_authentication"):
        return AuthFailed(message, provider=provider, status_code=status)
    if code == "model_not_found":
        return ModelNotFound(message, provider=provider, status_code=status)
    if status is None:
        # An error inside a 200 stream or body without a status: the server failed mid-answer.
        return ServerError(message, provider=provider)
    return error_for_status(status, message, provider=provider, retry_after=retry_after)


def _usage(raw: wire.CompletionUsage) -> Usage:
    cached = raw.prompt_tokens_details.cached_tokens if raw.prompt_tokens_details else None
    reasoning = (
        raw.completion_tokens_details.reasoning_tokens if raw.completion_tokens_details else None
    )
    return Usage(
        input_tokens=raw.prompt_tokens,
        output_tokens=raw.completion_tokens,
        cached_input_tokens=cached or 0,
        reasoning_tokens=reasoning or 0,
    )


def _function(
    name: str, description: str | None, parameters: dict[str, Any], strict: bool | None
) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        function["description"] = description
    if strict is not None:
        function["strict"] = strict
    return function


def _content(message: Message) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append({"type": "text", "text": part.text})
    return parts


def _message(message: Message) -> dict[str, Any]:
    """One message in OpenAI's shape; tool-call ids fitted to OpenAI's length limit."""
    role = message.role
    if role is Role.TOOL:
        return {"role": "tool", "tool_call_id": tool_ids.fit(message.tool_call_id or "",
                                                             max_length=MAX_TOOL_CALL_ID),
                "content": message.text}  # fmt: skip
    if role is Role.ASSISTANT and message.tool_calls:
        calls = [
            {"id": tool_ids.fit(c.id, max_length=MAX_TOOL_CALL_ID), "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]  # fmt: skip
        return {"role": "assistant", "content": message.text or None, "tool_calls": calls}
    return {"role": role.value, "content": _content(message)}


class _OpenAIStream:
    """chat.completion.chunk lines, a usage-only chunk, then ``[DONE]``."""

    def __init__(self, details: DetailsStream) -> None:
        self.provider = details.provider
        self.done = False
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._details = details

    def feed(self, event: SseEvent) -> StreamChunk | None:
        if event.data.strip() == "[DONE]":
            self.done = True
            return None
        data = decode_json(event.data, provider=self.provider, what="stream chunk")
        if isinstance(data, dict) and _error_of(data) is not None:
            raise _error_from_body(data, status=None, retry_after=None, provider=self.provider)
        try:
            chunk = wire.ChatCompletionChunk.model_validate(data)
        except ValidationError:
            raise MalformedResponse(
                "stream chunk lacks choices[0].delta", provider=self.provider
            ) from None
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = choice.delta
        calls = tuple(
            ToolCallDelta(
                d.index, d.id, d.function.name if d.function else None,
                (d.function.arguments or "") if d.function else "",
            )
            for d in delta.tool_calls or ()
        )  # fmt: skip
        if delta.reasoning_details:  # OpenRouter's blocks; its ``reasoning`` repeats their text
            piece = self._details.feed(delta.reasoning_details)
            thought, end = piece.text, piece.end
        else:
            thought, end = delta.reasoning_text, None
        if delta.content or calls or thought or end:
            return StreamChunk(text=delta.content or "", tool_calls=calls, reasoning=thought,
                               reasoning_end=end)  # fmt: skip
        return None

    def finish(self) -> StreamChunk:
        if not self.done:
            raise MalformedResponse("stream ended before [DONE]", provider=self.provider)
        if self.usage is None:
            logger.warning(
                "provider %s streamed no usage; it ignores stream_options.include_usage",
                self.provider,
            )
        return StreamChunk(usage=self.usage, finish_reason=self.finish_reason)
