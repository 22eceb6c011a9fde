"""Reading an OpenAI chat completions request body into what the sidecar acts on.

Only what a local model can honour is read: messages (string content, or a list of text
parts), ``max_tokens``/``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``,
``stop``, ``stream`` and ``stream_options.include_usage``. Other fields are ignored, as
OpenAI-compatible servers commonly do; a field with a wrong type is a 400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmagents.errors import LLMAgentsError

MAX_STOP_SEQUENCES = 4


class RequestError(LLMAgentsError):
    """A request the sidecar refuses, with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type


@dataclass(frozen=True, slots=True)
class ChatCall:
    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


def parse_chat_request(body: Any, *, served_model: str) -> ChatCall:
    """Validate ``body``; an unknown model is 404 ``model_not_found`` as at OpenAI."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != served_model:
        raise RequestError(
            f"the model {model!r} does not exist here; this sidecar serves {served_model!r}",
            status=404,
            param="model",
            code="model_not_found",
        )
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError("stream_options must be an object", param="stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ChatCall(
        messages=_messages(body.get("messages")),
        max_tokens=_number(max_tokens, "max_tokens", int, low=1),
        temperature=_number(body.get("temperature"), "temperature", float, low=0.0, high=2.0),
        top_p=_number(body.get("top_p"), "top_p", float, low=0.0, high=1.0, open_low=True),
        seed=_number(body.get("seed"), "seed", int),
        stop=_stop(body.get("stop")),
        stream=_flag(body.get("stream"), "stream"),
        include_usage=_flag(stream_options.get("include_usage"), "stream_options.include_usage"),
    )


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise RequestError("messages must be a non-empty list", param="messages")
    messages = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"{where} must be an object with a role", param=where)
        role = "system" if message["role"] == "developer" else message["role"]
        messages.append({"role": role, "content": _content(message.get("content"), where)})
    return messages


def _content(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise RequestError(
                    f"{where}.content: only text parts are supported", param=f"{where}.content"
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise RequestError(
        f"{where}.content must be a string or a list of text parts", param=f"{where}.content"
    )


def _number(
    value: Any,
    name: str,
    kind: type,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
) -> Any:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and not float(value).is_integer())
    ):
        raise RequestError(
            f"{name} must be a{'n integer' if kind is int else ' number'}", param=name
        )
    too_low = low is not None and (value <= low if open_low else value < low)
    if too_low or (high is not None and value > high):
        bounds = f"{'(' if open_low else '['}{low}, {high if high is not None else 'inf'}]"
        raise RequestError(f"{name} must be in {bounds}", param=name)
    return kind(value)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise RequestError("stop must be a string or a list of strings", param="stop")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise RequestError(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", param="stop")
    return tuple(s for s in stops if s)


def _flag(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false", param=name)
    return value
