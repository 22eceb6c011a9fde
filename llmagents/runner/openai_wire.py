"""OpenAI's chat-completions wire format as the gateway speaks it: requests in, answers out.

The gateway accepts what OpenAI's API accepts for plain chat (string or text-part content;
``max_tokens`` or ``max_completion_tokens``; ``temperature``, ``top_p``, ``stop``;
``stream`` with ``stream_options.include_usage``) and refuses, with OpenAI's error shape and
a message saying so, what it cannot route (tools, ``n`` > 1), rather than dropping it
silently. Answers and stream chunks have the fields OpenAI's clients read.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from llmagents.api.work import Complexity
from llmagents.chat import ChatRequest, Message, Role, Usage

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
}
_UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "response_format")


class WireError(Exception):
    """A request the gateway refuses; becomes OpenAI's error JSON with ``status``."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return error_body(self.message, kind=self.kind, code=self.code, param=self.param)


def error_body(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(slots=True)
class ChatCall:
    """A parsed chat request."""

    request: ChatRequest
    stream: bool
    include_usage: bool
    complexity: Complexity | None


def _content(value: Any, index: int) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise WireError(400, f"messages[{index}].content: only text parts are supported",
                                param=f"messages[{index}].content")  # fmt: skip
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise WireError(400, f"messages[{index}].content must be a string or a list of text parts",
                    param=f"messages[{index}].content")  # fmt: skip


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(400, f"'{name}' must be a number", param=name)
    return float(value)


def parse_chat(raw: bytes, complexity_header: str | None = None) -> ChatCall:
    """A ``ChatCall`` from a request body; ``WireError`` (400) when it is not one."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise WireError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise WireError(400, "the request body must be a JSON object")
    for name in _UNSUPPORTED:
        if body.get(name):
            raise WireError(400, f"'{name}' is not supported by the llmagents gateway: it "
                            "routes plain chat completions", param=name)  # fmt: skip
    if body.get("n", 1) != 1:
        raise WireError(400, "'n' must be 1: the gateway returns one choice", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "'messages' must be a non-empty list", param="messages")
    chat = []
    for index, message in enumerate(messages):
        role = _ROLES.get(message.get("role")) if isinstance(message, dict) else None
        if role is None:
            raise WireError(400, f"messages[{index}].role must be system, developer, user or "
                            "assistant", param=f"messages[{index}].role")  # fmt: skip
        chat.append(Message(role, _content(message.get("content"), index)))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise WireError(400, "'max_tokens' must be an integer of at least 1", param="max_tokens")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise WireError(400, "'stop' must be a string or a list of strings", param="stop")
    options = body.get("stream_options") or {}
    complexity = None
    if complexity_header:
        try:
            complexity = Complexity(complexity_header.strip().lower())
        except ValueError:
            raise WireError(400, "x-llmagents-complexity must be simple, medium or complex") from None
    request = ChatRequest(
        chat,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=stop or None,
    )
    return ChatCall(
        request=request,
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        complexity=complexity,
    )


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_body(
    *, cid: str, model: str, text: str, finish_reason: str | None, usage: Usage
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason or "stop",
            }
        ],
        "usage": usage_body(usage),
        "system_fingerprint": None,
    }


class ChunkWriter:
    """Encodes one stream's SSE events (``chat.completion.chunk``)."""

    def __init__(self, cid: str, model: str) -> None:
        self._head = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model, "system_fingerprint": None}  # fmt: skip

    def _event(self, choices: list[Any], usage: Usage | None = None, *, with_usage: bool) -> bytes:
        chunk = {**self._head, "choices": choices}
        if with_usage:
            chunk["usage"] = usage_body(usage) if usage is not None else None
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def role(self, *, with_usage: bool) -> bytes:
        delta = {"role": "assistant", "content": ""}
        return self._event([_choice(delta, None)], with_usage=with_usage)

    def text(self, text: str, *, with_usage: bool) -> bytes:
        return self._event([_choice({"content": text}, None)], with_usage=with_usage)

    def finish(self, reason: str | None, *, with_usage: bool) -> bytes:
        return self._event([_choice({}, reason or "stop")], with_usage=with_usage)

    def usage(self, usage: Usage) -> bytes:
        return self._event([], usage, with_usage=True)

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

    @staticmethod
    def error(message: str, *, code: str) -> bytes:
        body = error_body(message, kind="server_error", code=code)
        return b"data: " + json.dumps(body).encode() + b"\n\n"


def _choice(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
