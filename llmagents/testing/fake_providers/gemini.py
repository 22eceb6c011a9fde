"""A fake of the Gemini API: ``models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``
and the model listing, under ``/v1beta``.

Like the real service it takes the key from ``x-goog-api-key`` (or ``?key=``), answers a
missing key with 403 PERMISSION_DENIED and a wrong one with 400 INVALID_ARGUMENT whose details
say ``API_KEY_INVALID``, and puts the wait of a 429 into a ``RetryInfo`` detail.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from llmagents.testing.fake_providers import embeddings
from llmagents.testing.fake_providers.faults import Fault
from llmagents.testing.fake_providers.server import (
    Answer,
    ChatCall,
    FakeProviderServer,
    Reject,
    count_tokens,
)

_STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY = "API key not valid. Please pass a valid API key."


class FakeGemini(FakeProviderServer):
    """Speaks the Generative Language API on loopback; ``base_url`` is the server root."""

    protocol = "gemini"
    default_models = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1beta/models/{target}", self._handle_model_call),
            web.get("/v1beta/models", self._list_models),
        ]

    async def _handle_model_call(self, request: web.Request) -> web.StreamResponse:
        """Chat (generateContent) or embeddings (batchEmbedContents, embedContent)."""
        if request.match_info["target"].partition(":")[2] in embeddings.GEMINI_METHODS:
            return await embeddings.serve_gemini(self, request)
        return await self._handle_chat(request)

    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if self.api_key is None:
            return
        if key is None:
            raise Reject(403, _NO_KEY)
        if key != self.api_key:
            raise Reject(400, _BAD_KEY, reason="API_KEY_INVALID")

    async def _parse(self, request: web.Request) -> ChatCall:
        self._check_auth(request)
        model, _, method = request.match_info["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            raise Reject(404, f"Method {method or '(none)'} is not found.")
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            raise Reject(400, "This fake streams only with alt=sse.")
        try:
            body = await request.json()
        except ValueError:
            raise Reject(400, "Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise Reject(400, "Invalid JSON payload received. Expected an object.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise Reject(400, "* GenerateContentRequest.contents: contents is not specified\n")
        texts = []
        system = body.get("systemInstruction")
        if system is not None:
            texts.append(_parts_text(system, "system_instruction"))
        prompt = ""
        for i, content in enumerate(contents):
            role = content.get("role", "user") if isinstance(content, dict) else None
            if role not in ("user", "model"):
                raise Reject(400, f"* GenerateContentRequest.contents[{i}].role: invalid role")
            text = _parts_text(content, f"contents[{i}]")
            texts.append(text)
            if role == "user":
                prompt = text
        config = body.get("generationConfig") or {}
        max_tokens = config.get("maxOutputTokens") if isinstance(config, dict) else None
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise Reject(
                400,
                "* GenerateContentRequest.generation_config.max_output_tokens: "
                "must be a positive integer\n",
            )
        if model not in self.models:
            raise Reject(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        return ChatCall(
            model=model,
            prompt=prompt,
            input_tokens=sum(count_tokens(t) for t in texts),
            max_tokens=max_tokens,
            stream=stream,
        )

    async def _list_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except Reject as rejected:
            return self._error_response(rejected.status, rejected.message, reason=rejected.reason)
        models = [
            {
                "name": f"models/{m}",
                "displayName": m,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in self.models
        ]
        return web.json_response({"models": models})

    def _error_headers(self, fault: Fault | None) -> dict[str, str]:
        # Google says how long to wait in the body (RetryInfo); a date only fits a header.
        if fault is not None and fault.retry_after_http_date:
            return super()._error_headers(fault)
        return {}

    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        name, default = _STATUSES.get(status, _STATUSES[500 if status >= 500 else 400])
        error: dict[str, Any] = {"code": status, "message": message or default, "status": name}
        details: list[dict[str, Any]] = []
        if reason is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            )
        if fault is not None and fault.retry_after is not None and not fault.retry_after_http_date:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{fault.retry_after:g}s",
                }
            )
        if details:
            error["details"] = details
        return {"error": error}

    def _response(
        self, call: ChatCall, text: str, *, finish: str | None, output_tokens: int | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        usage: dict[str, Any] = {"promptTokenCount": call.input_tokens}
        if output_tokens is not None:
            usage["candidatesTokenCount"] = output_tokens
        usage["totalTokenCount"] = call.input_tokens + (output_tokens or 0)
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": call.model,
            "responseId": f"fake{self._next_id():06d}",
        }

    def _answer_body(self, call: ChatCall, answer: Answer) -> Any:
        finish = "MAX_TOKENS" if answer.hit_max_tokens else "STOP"
        return self._response(call, answer.text, finish=finish, output_tokens=answer.output_tokens)

    def _sse(self, event: str, data: str) -> bytes:
        return f"data: {data}\r\n\r\n".encode()

    def _stream_events(self, call: ChatCall, answer: Answer) -> list[tuple[bytes, bool]]:
        events = []
        last = len(answer.pieces) - 1
        finish = "MAX_TOKENS" if answer.hit_max_tokens else "STOP"
        for i, piece in enumerate(answer.pieces):
            body = self._response(
                call,
                piece,
                finish=finish if i == last else None,
                output_tokens=answer.output_tokens if i == last else None,
            )
            events.append((self._sse("", json.dumps(body)), True))
        return events

    def _stream_error_event(self) -> bytes:
        code, message = _STATUSES[503]
        error = {"error": {"code": 503, "message": message, "status": code}}
        return self._sse("", json.dumps(error))


def _parts_text(content: object, where: str) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise Reject(400, f"* GenerateContentRequest.{where}.parts: parts is not specified\n")
    return "".join(str(p.get("text", "")) for p in parts)
