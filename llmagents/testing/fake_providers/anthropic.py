"""A fake of Anthropic's Messages API: ``POST /v1/messages`` (plain and SSE) and ``GET /v1/models``.

It checks what the real API checks first — ``x-api-key``, ``anthropic-version``, the body's
``model``, ``max_tokens`` and ``messages`` — and answers in the documented shapes, including
the stream's event sequence and the ``{"type": "error", "error": {...}}`` error body.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from llmagents.testing.fake_providers.faults import Fault
from llmagents.testing.fake_providers.server import (
    Answer,
    ChatCall,
    FakeProviderServer,
    Reject,
    count_tokens,
)

_ERROR_TYPES = {
    400: ("invalid_request_error", "There was an issue with the format of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropic(FakeProviderServer):
    """Speaks the Messages API on loopback; ``base_url`` is the server root."""

    protocol = "anthropic"
    default_models = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
    overload_status = 529

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._handle_chat),
            web.get("/v1/models", self._list_models),
        ]

    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        if self.api_key is not None and key is None:
            raise Reject(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            raise Reject(401, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            raise Reject(400, "anthropic-version: header is required")

    async def _parse(self, request: web.Request) -> ChatCall:
        self._check_auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise Reject(400, "There was an issue with the format of your JSON body.") from None
        if not isinstance(body, dict):
            raise Reject(400, "Input should be an object")
        model = body.get("model")
        if not isinstance(model, str):
            raise Reject(400, "model: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise Reject(400, "max_tokens: Field required and must be at least 1")
        texts = [_text_of(body.get("system"), "system")] if body.get("system") else []
        prompt = ""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Reject(400, "messages: at least one message is required")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise Reject(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
            text = _text_of(message.get("content"), f"messages.{i}.content")
            texts.append(text)
            if message["role"] == "user":
                prompt = text
        if model not in self.models:
            raise Reject(404, f"model: {model}")
        return ChatCall(
            model=model,
            prompt=prompt,
            input_tokens=sum(count_tokens(t) for t in texts),
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
        )

    async def _list_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except Reject as rejected:
            return self._error_response(rejected.status, rejected.message)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in self.models
        ]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        kind, default = _ERROR_TYPES.get(status, _ERROR_TYPES[500 if status >= 500 else 400])
        return {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": f"req_fake{self._next_id():06d}",
        }

    def _answer_body(self, call: ChatCall, answer: Answer) -> Any:
        return {
            "id": f"msg_fake{self._next_id():06d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [{"type": "text", "text": answer.text}],
            "stop_reason": "max_tokens" if answer.hit_max_tokens else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": call.input_tokens, "output_tokens": answer.output_tokens},
        }

    def _sse(self, event: str, data: str) -> bytes:
        return f"event: {event}\ndata: {data}\n\n".encode()

    def _event(self, payload: dict[str, Any]) -> bytes:
        return self._sse(payload["type"], json.dumps(payload))

    def _stream_events(self, call: ChatCall, answer: Answer) -> list[tuple[bytes, bool]]:
        start = self._answer_body(call, Answer([], 1, False))
        start |= {"content": [], "stop_reason": None}
        events = [
            (self._event({"type": "message_start", "message": start}), False),
            (
                self._event(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
                False,
            ),
            (self._event({"type": "ping"}), False),
        ]
        for piece in answer.pieces:
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            events.append((self._event(delta), True))
        stop_reason = "max_tokens" if answer.hit_max_tokens else "end_turn"
        events += [
            (self._event({"type": "content_block_stop", "index": 0}), False),
            (
                self._event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                        "usage": {"output_tokens": answer.output_tokens},
                    }
                ),
                False,
            ),
            (self._event({"type": "message_stop"}), False),
        ]
        return events

    def _stream_error_event(self) -> bytes:
        return self._event(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )


def _text_of(content: object, where: str) -> str:
    """Message content is a string or a list of content blocks; only text blocks count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        return "".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    raise Reject(400, f"{where}: Input should be a valid string or list of content blocks")
