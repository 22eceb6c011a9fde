"""A fake of OpenAI's chat completions: ``POST /v1/chat/completions`` (plain and SSE) and
``GET /v1/models``; ``base_url`` ends in ``/v1`` as clients configure it.

Errors use OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with its codes
(``invalid_api_key``, ``model_not_found``, ``rate_limit_exceeded``); a stream honours
``stream_options.include_usage`` with the usage-only chunk before ``data: [DONE]``. With
``api_key=None`` it accepts calls without a key, like vLLM, Ollama or the ONNX sidecar.
"""

from __future__ import annotations

import json
import time
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

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", None, "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_ROLES = ("system", "developer", "user", "assistant", "tool")


class FakeOpenAI(FakeProviderServer):
    """Speaks OpenAI-compatible chat completions on loopback."""

    protocol = "openai"
    default_models = ("gpt-4o-mini", "gpt-4.1", "local-model")
    api_prefix = "/v1"

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._handle_chat),
            web.get("/v1/models", self._list_models),
            embeddings.openai_route(self),
        ]

    def _check_auth(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header or scheme.lower() != "bearer":
            raise Reject(401, _NO_KEY)
        if key.strip() != self.api_key:
            raise Reject(401, _ERRORS[401][2], reason="invalid_api_key")

    async def _parse(self, request: web.Request) -> ChatCall:
        self._check_auth(request)
        try:
            body = await request.json()
        except ValueError:
            raise Reject(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise Reject(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str):
            raise Reject(400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise Reject(400, "'messages' must contain at least one message.")
        texts, prompt = [], ""
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise Reject(400, f"Invalid value for 'messages[{i}].role'.")
            text = _content_text(message.get("content"), i)
            texts.append(text)
            if message["role"] == "user":
                prompt = text
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise Reject(400, "Invalid 'max_tokens': integer below minimum value 1.")
        if model not in self.models:
            raise Reject(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                reason="model_not_found",
            )
        options = body.get("stream_options") or {}
        return ChatCall(
            model=model,
            prompt=prompt,
            input_tokens=sum(count_tokens(t) for t in texts),
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        )

    async def _list_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except Reject as rejected:
            return self._error_response(rejected.status, rejected.message, reason=rejected.reason)
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        kind, code, default = _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])
        return {
            "error": {
                "message": message or default,
                "type": kind,
                "param": None,
                "code": reason or code,
            }
        }

    def _chunk(self, call: ChatCall, cid: str, choices: list[Any], usage: Any = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if call.include_usage:
            chunk["usage"] = usage
        return self._sse("", json.dumps(chunk))

    def _answer_body(self, call: ChatCall, answer: Answer) -> Any:
        return {
            "id": f"chatcmpl-fake{self._next_id():06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "length" if answer.hit_max_tokens else "stop",
                }
            ],
            "usage": _usage(call, answer),
            "system_fingerprint": None,
        }

    def _sse(self, event: str, data: str) -> bytes:
        return f"data: {data}\n\n".encode()

    def _stream_events(self, call: ChatCall, answer: Answer) -> list[tuple[bytes, bool]]:
        cid = f"chatcmpl-fake{self._next_id():06d}"

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        events = [(self._chunk(call, cid, choice({"role": "assistant", "content": ""})), False)]
        events += [(self._chunk(call, cid, choice({"content": p})), True) for p in answer.pieces]
        finish = "length" if answer.hit_max_tokens else "stop"
        events.append((self._chunk(call, cid, choice({}, finish)), False))
        if call.include_usage:
            events.append((self._chunk(call, cid, [], _usage(call, answer)), False))
        events.append((self._sse("", "[DONE]"), False))
        return events

    def _stream_error_event(self) -> bytes:
        _, _, message = _ERRORS[503]
        error = {"message": message, "type": "server_error", "param": None, "code": None}
        return self._sse("", json.dumps({"error": error}))


def _usage(call: ChatCall, answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": call.input_tokens + answer.output_tokens,
    }


def _content_text(content: object, index: int) -> str:
    """Content is a string, a list of parts (text parts count), or null for tool calls."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    raise Reject(400, f"Invalid type for 'messages[{index}].content'.")
