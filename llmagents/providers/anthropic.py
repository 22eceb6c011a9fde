"""Anthropic's Messages API (``POST /v1/messages``), plain and streamed.

System messages go to the top-level ``system`` field (the API has no system role); the answer
is the concatenated ``text`` blocks of ``content``; usage is ``usage.input_tokens`` and
``usage.output_tokens``, where a stream reports input in ``message_start`` and the running
output total in ``message_delta``. Errors carry ``{"type": "error", "error": {"type": ...}}``,
and the error type decides the taxonomy, so that 529 ``overloaded_error`` stays distinct from
429 ``rate_limit_error``.
"""

from __future__ import annotations

from typing import Any

from llmagents.chat import ChatRequest, ChatResponse, Role, StreamChunk, Usage
from llmagents.errors import (
    AuthFailed,
    BadRequest,
    MalformedResponse,
    ModelNotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
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
    token_count,
)
from llmagents.providers.sse import SseEvent

ANTHROPIC_VERSION = "2023-06-01"
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
    "invalid_request_error": BadRequest,
    "request_too_large": BadRequest,
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
        system = [m.content for m in request.messages if m.role is Role.SYSTEM]
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": (
                DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
            ),
            "messages": [
                {"role": m.role.value, "content": m.content}
                for m in request.messages
                if m.role is not Role.SYSTEM
            ],
        }
        if system:
            payload["system"] = "\n\n".join(system)
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop_sequences"] = request.stop
        if stream:
            payload["stream"] = True
        return payload

    def _parse_answer(self, data: Any) -> ChatResponse:
        try:
            blocks = data["content"]
            text = "".join(b["text"] for b in blocks if b.get("type") == "text")
            usage = _usage(data["usage"])
            stop_reason = data.get("stop_reason")
        except (KeyError, TypeError, AttributeError, ValueError):
            raise missing("content, usage or stop_reason", provider=self.name) from None
        return ChatResponse(
            text=text,
            usage=usage,
            model=str(data.get("model") or self.model),
            finish_reason=_finish(stop_reason),
            provider=self.name,
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
    return cls(message, provider=provider, status_code=status, retry_after=retry_after)


def _usage(raw: Any) -> Usage:
    # Cached prompt tokens are reported apart from input_tokens; they were still sent, so the
    # budget counts them as input rather than forgetting them.
    input_tokens = (
        token_count(raw["input_tokens"])
        + token_count(raw.get("cache_creation_input_tokens") or 0)
        + token_count(raw.get("cache_read_input_tokens") or 0)
    )
    return Usage(input_tokens=input_tokens, output_tokens=token_count(raw.get("output_tokens") or 0))


def _finish(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH.get(str(stop_reason), str(stop_reason))


class _AnthropicStream:
    """message_start → content_block_* (text_delta) → message_delta → message_stop."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None
        self.stop_reason: object = None

    def feed(self, event: SseEvent) -> StreamChunk | None:
        kind = event.event
        if kind in ("ping", "content_block_start", "content_block_stop"):
            return None
        data = decode_json(event.data, provider=self.provider, what=f"{kind} event")
        try:
            if kind == "content_block_delta":
                delta = data["delta"]
                if delta.get("type") == "text_delta":
                    return StreamChunk(text=delta["text"])
            elif kind == "message_start":
                self.usage = _usage(data["message"]["usage"])
            elif kind == "message_delta":
                self.stop_reason = data["delta"].get("stop_reason", self.stop_reason)
                self._update_usage(data.get("usage") or {})
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                raise _error_from_body(
                    data["error"], data, status=None, retry_after=None, provider=self.provider
                )
        except (KeyError, TypeError, AttributeError, ValueError):
            raise MalformedResponse(
                f"{kind} event lacks its documented fields", provider=self.provider
            ) from None
        return None

    def _update_usage(self, raw: dict[str, Any]) -> None:
        if self.usage is None:
            raise MalformedResponse("message_delta before message_start", provider=self.provider)
        # output_tokens in message_delta is the running total, not an increment.
        if "output_tokens" in raw:
            self.usage.output_tokens = token_count(raw["output_tokens"])
        if raw.get("input_tokens") is not None:
            self.usage = Usage(_usage(raw).input_tokens, self.usage.output_tokens)

    def finish(self) -> StreamChunk:
        if not self.done:
            raise MalformedResponse("stream ended before message_stop", provider=self.provider)
        if self.usage is None:
            raise missing("message_start usage", provider=self.provider)
        return StreamChunk(usage=self.usage, finish_reason=_finish(self.stop_reason))
