"""Google's Gemini API: ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``.

The request's translation is in ``gemini_payload``; the shapes in ``llmagents.wire.gemini``.
Answers: text parts joined (thought summaries apart, as the answer's reasoning),
``functionCall`` parts as tool calls with ids of ours (Gemini gives none) and finish reason
``tool_calls`` (Gemini says ``STOP``).
A stream sends each function call whole, relayed as one tool-call delta. The thought
signatures Gemini attaches to function calls are kept by tool-call id and sent back with
the history (Gemini 3 refuses a history without them; ``gemini_payload``). Usage comes from
``usageMetadata`` (prompt tokens; output
is candidates plus thinking tokens, both billed as output). A stream is a series of whole
``GenerateContentResponse`` objects with no terminal sentinel: the answer is complete when a
candidate carried a ``finishReason``. Errors follow Google's RPC shape
``{"error": {"code", "message", "status", "details"}}``; an invalid key is a 400 whose
details give ``API_KEY_INVALID``, and a 429 may say how long to wait in ``RetryInfo``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from llmagents.chat import (
    ChatRequest,
    ChatResponse,
    Reasoning,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmagents.errors import (
    AuthFailed,
    BadRequest,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    ServerError,
)
from llmagents.providers import gemini_payload, tool_ids
from llmagents.providers.base import ProviderAdapter
from llmagents.providers.mapping import (
    Headers,
    body_excerpt,
    body_json,
    decode_json,
    error_for_status,
    google_duration_seconds,
    missing,
    refused_request,
    retry_after_seconds,
    short,
)
from llmagents.providers.sse import SseEvent
from llmagents.wire import gemini as wire

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

MAX_SIGNATURES = 4096
"""Thought signatures an adapter keeps (a few hundred bytes each)."""

_STATUS_ERRORS: dict[str, type[ProviderError]] = {
    "RESOURCE_EXHAUSTED": RateLimited,
    "INVALID_ARGUMENT": RequestRefused,
    # The account or region, not the request ("User location is not supported", billing).
    "FAILED_PRECONDITION": BadRequest,
    "OUT_OF_RANGE": RequestRefused,
    "UNAUTHENTICATED": AuthFailed,
    "PERMISSION_DENIED": AuthFailed,
    "NOT_FOUND": ModelNotFound,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
    "UNAVAILABLE": ServerError,
    "DEADLINE_EXCEEDED": ProviderTimeout,
}


class GeminiAdapter(ProviderAdapter):
    """Gemini models through the Generative Language API."""

    protocol = "gemini"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._signatures: OrderedDict[str, str] = OrderedDict()
        """Thought signatures of the calls this model made, by the tool-call ids given them;
        the oldest are forgotten first (a forgotten one gets the stand-in)."""

    def _remember(self, call_id: str, signature: str) -> None:
        self._signatures[call_id] = signature
        while len(self._signatures) > MAX_SIGNATURES:
            self._signatures.popitem(last=False)

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": api_key} if api_key else {}

    def _versioned(self, path: str) -> str:
        # A base URL may or may not name the API version; the public default does not.
        tail = self.base_url.rsplit("/", 1)[-1]
        return path if tail.startswith("v1") else "/v1beta" + path

    def _endpoint(self, *, stream: bool) -> str:
        model = self.model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return self._versioned(f"/models/{model}:{method}")

    def _models_endpoint(self) -> str:
        return self._versioned("/models")

    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        model = self.model.removeprefix("models/")
        return gemini_payload.payload(request, signatures=self._signatures,
                                      strict=model.startswith("gemini-3"), model=model)  # fmt: skip

    def _parse_answer(self, data: Any) -> ChatResponse:
        try:
            answer = wire.GenerateContentResponse.model_validate(data)
            text, calls, finish = _candidate(answer, self._remember)
            if answer.usageMetadata is None:
                raise ValueError("no usageMetadata")
        except (ValidationError, ValueError):
            raise missing("candidates or usageMetadata", provider=self.name) from None
        thoughts = _thoughts(answer)
        return ChatResponse(
            text=text,
            usage=_usage(answer.usageMetadata),
            model=answer.modelVersion or self.model,
            finish_reason=finish,
            provider=self.name,
            tool_calls=calls,
            reasoning=(Reasoning(thoughts, provider=self.name),) if thoughts else (),
        )

    def _parse_models(self, data: Any) -> list[str]:
        try:
            return [str(m["name"]).removeprefix("models/") for m in data.get("models", [])]
        except (KeyError, TypeError, AttributeError):
            raise missing("models[].name", provider=self.name) from None

    def _stream_decoder(self) -> _GeminiStream:
        return _GeminiStream(self.name, self._remember)

    def _map_error(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        data = body_json(body)
        if isinstance(data, list) and data:
            data = data[0]
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return error_for_status(
                status,
                body_excerpt(body),
                provider=self.name,
                retry_after=retry_after_seconds(headers),
            )
        return _error_from_body(error, status=status, headers=headers, provider=self.name)


def _error_from_body(
    error: dict[str, Any], *, status: int | None, headers: Headers | None, provider: str
) -> ProviderError:
    code = str(error.get("status", ""))
    message = f"{code or error.get('code')}: {short(error.get('message', ''))}"
    found = error.get("details")
    details: list[Any] = found if isinstance(found, list) else []
    retry_after = retry_after_seconds(headers) if headers is not None else None
    reasons = set()
    for detail in details:
        if not isinstance(detail, dict):
            continue
        reasons.add(detail.get("reason"))
        if retry_after is None and str(detail.get("@type", "")).endswith("RetryInfo"):
            retry_after = google_duration_seconds(detail.get("retryDelay"))
    if status is None and isinstance(error.get("code"), int):
        status = error["code"]
    if "API_KEY_INVALID" in reasons:
        return AuthFailed(message, provider=provider, status_code=status)
    cls = _STATUS_ERRORS.get(code)
    if cls is None:
        return error_for_status(status or 500, message, provider=provider, retry_after=retry_after)
    if cls is RequestRefused:
        return refused_request(message, provider=provider, status=status)
    return cls(message, provider=provider, status_code=status, retry_after=retry_after)


def _thoughts(answer: wire.GenerateContentResponse) -> str:
    """The thought summaries of the first candidate (``includeThoughts``): its reasoning,
    never part of the answer's text."""
    first = answer.candidates[0] if answer.candidates else None
    parts = first.content.parts if first is not None and first.content is not None else []
    return "".join(p.text for p in parts if p.text and p.thought)


def _candidate(
    answer: wire.GenerateContentResponse, remember: Callable[[str, str], None]
) -> tuple[str, tuple[ToolCall, ...], str | None]:
    """Text, tool calls and normalised finish reason of the first candidate; a blocked
    prompt has none. Calls' thought signatures go to ``remember``."""
    if not answer.candidates:
        if answer.promptFeedback is not None and answer.promptFeedback.blockReason:
            return "", (), "content_filter"
        raise ValueError("no candidates")
    first = answer.candidates[0]
    parts = first.content.parts if first.content is not None else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    calls = []
    for part in parts:
        if part.functionCall is None:
            continue
        call = ToolCall(part.functionCall.id or tool_ids.new_id(), part.functionCall.name,
                        json.dumps(part.functionCall.args, separators=(",", ":")))  # fmt: skip
        if part.thoughtSignature:
            remember(call.id, part.thoughtSignature)
        calls.append(call)
    finish = _finish(first.finishReason)
    if calls and finish == "stop":
        finish = "tool_calls"
    return text, tuple(calls), finish


def _usage(raw: wire.UsageMetadata) -> Usage:
    thoughts = raw.thoughtsTokenCount or 0
    return Usage(
        input_tokens=raw.promptTokenCount,
        output_tokens=(raw.candidatesTokenCount or 0) + thoughts,
        cached_input_tokens=raw.cachedContentTokenCount or 0,
        reasoning_tokens=thoughts,
    )


def _finish(reason: object) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    return _FINISH.get(str(reason), str(reason).lower())


class _GeminiStream:
    """Each event is a partial GenerateContentResponse; usage totals arrive with the last."""

    def __init__(self, provider: str, remember: Callable[[str, str], None]) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._calls = 0
        self._remember = remember

    def feed(self, event: SseEvent) -> StreamChunk | None:
        data = decode_json(event.data, provider=self.provider, what="stream event")
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise _error_from_body(data["error"], status=None, headers=None, provider=self.provider)
        try:
            answer = wire.GenerateContentResponse.model_validate(data)
            if answer.usageMetadata is not None:
                self.usage = _usage(answer.usageMetadata)
            blocked = answer.promptFeedback is not None and answer.promptFeedback.blockReason
            if not answer.candidates and not blocked:
                if self.usage is None:
                    raise ValueError("neither candidates nor usage")
                return None  # a usage-only event
            text, calls, finish = _candidate(answer, self._remember)
        except (ValidationError, ValueError):
            raise MalformedResponse(
                "stream event lacks candidates or usageMetadata", provider=self.provider
            ) from None
        deltas = []
        for call in calls:
            deltas.append(ToolCallDelta(self._calls, call.id, call.name, call.arguments))
            self._calls += 1
        if finish is not None:
            self.finish_reason = "tool_calls" if self._calls and finish == "stop" else finish
        thoughts = _thoughts(answer)
        if text or deltas or thoughts:
            return StreamChunk(text=text, tool_calls=tuple(deltas), reasoning=thoughts)
        return None

    def finish(self) -> StreamChunk:
        if self.finish_reason is None:
            raise MalformedResponse(
                "stream ended before any candidate finished", provider=self.provider
            )
        if self.usage is None:
            raise missing("usageMetadata", provider=self.provider)
        return StreamChunk(usage=self.usage, finish_reason=self.finish_reason)
