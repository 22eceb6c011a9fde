"""OpenAI-compatible chat completions (``POST {base}/chat/completions``).

One adapter serves OpenAI, OpenRouter, vLLM, Ollama and the agent's own ONNX sidecar; the base
URL usually ends in ``/v1``. Streams are ``data:`` lines of ``chat.completion.chunk`` objects
ended by ``data: [DONE]``; with ``stream_options.include_usage`` the last chunk before it has
empty ``choices`` and the request's ``usage``. A server that ignores that option streams no
usage at all: then the final chunk's ``usage`` is ``None`` rather than an invented count.

Error bodies differ between servers — OpenAI's ``{"error": {"message", "type", "param",
"code"}}``, OpenRouter's numeric ``error.code``, older vLLM's top-level ``{"object": "error"}``
— so the HTTP status decides first and the body only sharpens it.

The output limit goes out as ``max_completion_tokens`` to OpenAI itself (and Azure OpenAI),
where ``max_tokens`` is deprecated and refused by the reasoning and newer models, and as
``max_tokens`` to every other server, since older compatible servers read only that.
"""

from __future__ import annotations

import logging
from typing import Any

from llmagents.chat import ChatRequest, ChatResponse, StreamChunk, Usage
from llmagents.errors import (
    AuthFailed,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
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

logger = logging.getLogger(__name__)


class OpenAIAdapter(ProviderAdapter):
    """Any server that speaks OpenAI's chat completions."""

    protocol = "openai"

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
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role.value, "content": m.content} for m in request.messages],
        }
        if request.max_tokens is not None:
            payload[self._limit_field] = request.max_tokens
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop"] = request.stop
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _parse_answer(self, data: Any) -> ChatResponse:
        if isinstance(data, dict) and _error_of(data) is not None:
            raise _error_from_body(data, status=None, retry_after=None, provider=self.name)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = _usage(data["usage"])
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            raise missing("choices[0].message or usage", provider=self.name) from None
        return ChatResponse(
            text=text,
            usage=usage,
            model=str(data.get("model") or self.model),
            finish_reason=choice.get("finish_reason"),
            provider=self.name,
        )

    def _stream_decoder(self) -> _OpenAIStream:
        return _OpenAIStream(self.name)

    def _map_error(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        retry_after = retry_after_seconds(headers)
        data = body_json(body)
        if not isinstance(data, dict) or _error_of(data) is None:
            return error_for_status(
                status, body_excerpt(body), provider=self.name, retry_after=retry_after
            )
        return _error_from_body(data, status=status, retry_after=retry_after, provider=self.name)


def _error_of(data: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(data.get("error"), dict):
        return data["error"]
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


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=token_count(raw["prompt_tokens"]),
        output_tokens=token_count(raw.get("completion_tokens") or 0),
    )


class _OpenAIStream:
    """chat.completion.chunk lines, a usage-only chunk, then ``[DONE]``."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def feed(self, event: SseEvent) -> StreamChunk | None:
        if event.data.strip() == "[DONE]":
            self.done = True
            return None
        data = decode_json(event.data, provider=self.provider, what="stream chunk")
        if isinstance(data, dict) and _error_of(data) is not None:
            raise _error_from_body(data, status=None, retry_after=None, provider=self.provider)
        try:
            if data.get("usage"):
                self.usage = _usage(data["usage"])
            choices = data.get("choices") or []
            if not choices:
                return None
            choice = choices[0]
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            text = (choice.get("delta") or {}).get("content") or ""
        except (KeyError, TypeError, AttributeError, ValueError):
            raise MalformedResponse(
                "stream chunk lacks choices[0].delta", provider=self.provider
            ) from None
        return StreamChunk(text=text) if text else None

    def finish(self) -> StreamChunk:
        if not self.done:
            raise MalformedResponse("stream ended before [DONE]", provider=self.provider)
        if self.usage is None:
            logger.warning(
                "provider %s streamed no usage; it ignores stream_options.include_usage",
                self.provider,
            )
        return StreamChunk(usage=self.usage, finish_reason=self.finish_reason)
