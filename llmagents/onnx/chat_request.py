"""Reading an OpenAI chat completions request body into what the sidecar acts on.

The body is validated with the same wire model as the gateway's and the fake OpenAI
server's (``llmagents.wire.openai_chat``): a field with a wrong type or out of range is a
400 naming it. The local model is a small text model: it answers text, streamed or not,
and cannot call tools, see images or follow a JSON schema. Those requests are refused
with a 400 (code ``unsupported_capability``) rather than answered badly; the runner's
engine never sends them here, since the sidecar's capabilities (``CAPABILITIES``, also on
its ``/v1/models``) say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from llmagents.chat import Capability
from llmagents.errors import LLMAgentsError
from llmagents.routing.selection import ONNX_CAPABILITIES
from llmagents.wire import openai_chat as wire

CAPABILITIES: frozenset[Capability] = ONNX_CAPABILITIES
"""What the sidecar can do beyond plain text: the engine's default for the onnx type."""


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
class SidecarCall:
    """A chat request the sidecar can serve, read from OpenAI's chat completions body."""

    messages: list[dict[str, str]]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


def parse_chat_request(raw: bytes, *, served_model: str) -> SidecarCall:
    """Validate ``raw``; an unknown model is 404 ``model_not_found`` as at OpenAI."""
    try:
        body = wire.ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as invalid:
        message, param = wire.describe(invalid)
        raise RequestError(message, param=param) from None
    if body.model != served_model:
        raise RequestError(
            f"the model {body.model!r} does not exist here; this sidecar serves {served_model!r}",
            status=404,
            param="model",
            code="model_not_found",
        )
    _refuse_what_it_cannot_do(body)
    if body.top_p == 0:
        raise RequestError("top_p must be in (0, 1]: nothing can be sampled from none of the "
                           "probability mass", param="top_p")  # fmt: skip
    return SidecarCall(
        messages=[_message(m, i) for i, m in enumerate(body.messages)],
        max_tokens=body.output_limit,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=tuple(body.stop_list or ()),
        stream=bool(body.stream),
        include_usage=body.include_usage,
    )


def _unsupported(capability: Capability, param: str) -> RequestError:
    return RequestError(
        f"the local model cannot serve {capability.value} ('{param}'); send this request to "
        "a provider that can",
        param=param,
        code="unsupported_capability",
    )


def _refuse_what_it_cannot_do(body: wire.ChatCompletionRequest) -> None:
    if body.tools:
        raise _unsupported(Capability.TOOLS, "tools")
    if isinstance(body.response_format, wire.JsonSchemaFormat | wire.JsonObjectFormat):
        raise _unsupported(Capability.JSON_SCHEMA, "response_format")
    for i, message in enumerate(body.messages):
        if isinstance(message, wire.ToolMessage) or getattr(message, "tool_calls", None):
            raise _unsupported(Capability.TOOLS, f"messages[{i}]")
        content = message.content
        if isinstance(content, list) and any(isinstance(p, wire.ImagePart) for p in content):
            raise _unsupported(Capability.VISION, f"messages[{i}].content")


def _message(message: wire.Message, index: int) -> dict[str, str]:
    role = "system" if message.role == "developer" else message.role
    content = message.content
    if content is None or isinstance(content, str):
        return {"role": role, "content": content or ""}
    return {"role": role, "content": "".join(getattr(p, "text", "") for p in content)}
