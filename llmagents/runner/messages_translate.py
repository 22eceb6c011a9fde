"""Translation between Anthropic's Messages API and the provider-neutral chat model.

Pure functions and one stream encoder, no I/O: the ``/v1/messages`` route
(``front_messages``) parses a body with ``parse_messages``, answers through the gateway's
neutral path, and writes the answer with ``message_object`` or, streamed, with
``MessagesStream``.

``system`` becomes a system message. A user message's ``tool_result`` blocks become tool
messages answering their ``tool_use_id`` (in order, before the rest of that message); an
assistant message's ``tool_use`` blocks become its tool calls, their ``input`` the call's
JSON arguments; ``thinking`` blocks carry no content another provider can read and are
dropped. A ``tool_use`` id is the chat model's tool-call id, so a conversation continues on
any provider with the ids the client knows. ``top_k``, ``metadata`` and ``service_tier``
reach an Anthropic provider unchanged; other protocols have no place for them.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from llmagents.chat import (
    ChatRequest,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    Role,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
    Usage,
)
from llmagents.runner.chat_path import Refusal
from llmagents.wire import anthropic as wire
from llmagents.wire import extras

logger = logging.getLogger(__name__)

_STOP_REASONS = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
}


def message_id() -> str:
    return "msg_" + secrets.token_hex(12)


@dataclass(slots=True)
class MessagesCall:
    """A parsed ``POST /v1/messages``."""

    wire: wire.MessagesRequest
    request: ChatRequest

    @property
    def stream(self) -> bool:
        return bool(self.wire.stream)


def parse_messages(raw: bytes) -> MessagesCall:
    """The call in a request body; ``Refusal`` (400) naming the first wrong field."""
    try:
        request = wire.MessagesRequest.model_validate_json(raw)
    except ValidationError as invalid:
        raise _invalid(invalid) from None
    return MessagesCall(request, to_chat(request))


def _invalid(invalid: ValidationError) -> Refusal:
    errors = invalid.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return Refusal(400, f"the request body is not valid JSON: {first['msg']}")
    # A union reports one error per member; the deepest is the one about what was sent.
    error = max(errors, key=lambda e: len(_field_path(e["loc"])))
    path = _field_path(error["loc"])
    param = ".".join(str(p) for p in path) or None
    message = f"{param}: {error['msg']}" if param else error["msg"]
    return Refusal(400, message, param=param)


def _field_path(loc: tuple[int | str, ...]) -> list[int | str]:
    """The fields of an error's location without pydantic's union-member labels."""
    return [
        p
        for p in loc
        if not (isinstance(p, str) and ("[" in p or p in ("str", "list") or p[:1].isupper()))
    ]


def to_chat(request: wire.MessagesRequest) -> ChatRequest:
    """The neutral chat request of a validated Messages request."""
    messages: list[Message] = []
    if request.system:
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(block.text for block in request.system)
        )
        messages.append(Message(Role.SYSTEM, system))
    calls: dict[str, str] = {}
    for index, message in enumerate(request.messages):
        if isinstance(message.content, str):
            role = Role.USER if message.role == "user" else Role.ASSISTANT
            messages.append(Message(role, message.content))
        elif message.role == "assistant":
            messages.append(_assistant(message.content, calls))
        else:
            messages.extend(_user(message.content, calls, index))
    choice = request.tool_choice
    parallel = None
    if choice is not None and getattr(choice, "disable_parallel_tool_use", None):
        parallel = False
    return ChatRequest(
        messages,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop_sequences or None,
        tools=tuple(Tool(t.name, t.description, t.input_schema) for t in request.tools or ()),
        tool_choice=_tool_choice(request),
        parallel_tool_calls=parallel,
        passthrough=_passthrough(request),
    )


def _passthrough(request: wire.MessagesRequest) -> dict[str, dict[str, Any]]:
    """What an Anthropic provider also gets unchanged: ``top_k``, ``metadata`` and
    ``service_tier``. Not ``thinking``: its blocks would have to come back to the client
    and be sent again in later turns, which other providers' answers cannot do."""
    kept = extras(request)
    out = {name: kept[name] for name in ("metadata", "service_tier") if kept.get(name) is not None}
    if request.top_k is not None:
        out["top_k"] = request.top_k
    return {"anthropic": out} if out else {}


def _assistant(blocks: Iterable[Any], calls: dict[str, str]) -> Message:
    text: list[str] = []
    tool_calls: list[ToolCall] = []
    for block in blocks:
        if isinstance(block, wire.TextBlock):
            text.append(block.text)
        elif isinstance(block, wire.ToolUseBlock):
            tool_calls.append(ToolCall(block.id, block.name, json.dumps(block.input)))
            calls[block.id] = block.name
        # thinking blocks: dropped; images and tool results cannot be an assistant's
    return Message(Role.ASSISTANT, "".join(text), tool_calls=tuple(tool_calls))


def _user(blocks: Iterable[Any], calls: dict[str, str], index: int) -> list[Message]:
    results: list[Message] = []
    parts: list[ContentPart] = []
    for block in blocks:
        if isinstance(block, wire.ToolResultBlock):
            if block.tool_use_id not in calls:
                raise Refusal(
                    400,
                    f"messages.{index}: tool_result answers tool_use_id "
                    f"{block.tool_use_id!r}, which no earlier tool_use block has",
                    param=f"messages.{index}.content",
                )
            results.append(
                Message(
                    Role.TOOL,
                    _result_content(block),
                    tool_call_id=block.tool_use_id,
                    name=calls[block.tool_use_id],
                )
            )
        elif isinstance(block, wire.TextBlock):
            parts.append(TextPart(block.text))
        elif isinstance(block, wire.ImageBlock):
            parts.append(_image(block))
    if parts:
        text_only = all(isinstance(p, TextPart) for p in parts)
        content: str | tuple[ContentPart, ...] = (
            "".join(p.text for p in parts if isinstance(p, TextPart)) if text_only else tuple(parts)
        )
        results.append(Message(Role.USER, content))
    return results


def _result_content(block: wire.ToolResultBlock) -> str | tuple[ContentPart, ...]:
    # Other protocols have no is_error flag: the model learns of the failure from the text.
    prefix = "Error: " if block.is_error else ""
    if block.content is None or isinstance(block.content, str):
        return prefix + (block.content or "")
    parts: list[ContentPart] = [
        TextPart(b.text) if isinstance(b, wire.TextBlock) else _image(b) for b in block.content
    ]
    if all(isinstance(p, TextPart) for p in parts):
        return prefix + "".join(p.text for p in parts if isinstance(p, TextPart))
    return (TextPart(prefix), *parts) if prefix else tuple(parts)


def _image(block: wire.ImageBlock) -> ImagePart:
    source = block.source
    if isinstance(source, wire.Base64Source):
        return ImagePart(f"data:{source.media_type};base64,{source.data}")
    return ImagePart(source.url)


def _tool_choice(request: wire.MessagesRequest) -> ToolChoice | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, wire.ToolChoiceTool):
        if choice.name not in {t.name for t in request.tools or ()}:
            raise Refusal(
                400,
                f"tool_choice names tool {choice.name!r}, which is not among the request's tools",
                param="tool_choice",
            )
        return ToolChoice(ToolChoiceMode.REQUIRED, choice.name)
    if isinstance(choice, wire.ToolChoiceAny):
        return ToolChoice(ToolChoiceMode.REQUIRED)
    if isinstance(choice, wire.ToolChoiceNone):
        return ToolChoice(ToolChoiceMode.NONE)
    return ToolChoice(ToolChoiceMode.AUTO)


# -- answers ----------------------------------------------------------------------------------


def stop_reason(finish_reason: str | None) -> str:
    try:
        return _STOP_REASONS[FinishReason(finish_reason or "")]
    except ValueError:
        return "end_turn"


def usage_object(usage: Usage) -> wire.Usage:
    """Anthropic counts cache reads apart from ``input_tokens``; the chat model within it."""
    return wire.Usage(
        input_tokens=usage.input_tokens - usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_input_tokens=usage.cached_input_tokens,
        cache_creation_input_tokens=0,
    )


def tool_input(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as the JSON object Anthropic's ``input`` is."""
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        logger.warning("tool call %s: arguments are not a JSON object; sent as {}", call.id)
        return {}
    return value


def message_object(
    answer_text: str,
    tool_calls: Iterable[ToolCall],
    *,
    usage: Usage,
    finish_reason: str | None,
    model: str,
) -> wire.Message:
    content: list[Any] = []
    if answer_text:
        content.append(wire.AnswerText(type="text", text=answer_text))
    for call in tool_calls:
        content.append(
            wire.AnswerToolUse(type="tool_use", id=call.id, name=call.name, input=tool_input(call))
        )
    return wire.Message(
        id=message_id(),
        model=model,
        content=content,
        stop_reason=stop_reason(finish_reason),
        usage=usage_object(usage),
    )


class MessagesStream:
    """Encodes one streamed answer as the Messages API's events, in Anthropic's order.

    ``message_start``; per content block ``content_block_start``, its deltas (``text_delta``,
    or ``input_json_delta`` pieces of a tool's input) and ``content_block_stop``; then
    ``message_delta`` with the stop reason and the usage, and ``message_stop``. Input tokens
    are known only at the end: ``message_start`` reports the gateway's estimate (what
    clients that read only it, as LangChain does, then show) and ``message_delta`` the
    provider's count, which Anthropic's SDK puts in its place. A provider failing
    mid-answer ends the stream with an ``error`` event, which the SDK raises.
    """

    def __init__(self, model: str, *, input_estimate: int = 0) -> None:
        self.model = model
        self.input_estimate = input_estimate
        self._index = -1
        self._open: str | None = None  # "text" or "tool"
        self._tools: dict[int, int] = {}  # tool-call index -> block index

    def start(self) -> bytes:
        message = wire.Message(
            id=message_id(),
            model=self.model,
            content=[],
            usage=wire.Usage(input_tokens=self.input_estimate, output_tokens=0),
        )
        return wire.sse(wire.MessageStart(message=message)) + wire.sse(wire.Ping())

    def chunk(self, chunk: StreamChunk) -> bytes:
        events = self._text(chunk.text) if chunk.text else b""
        for delta in chunk.tool_calls:
            events += self._tool(delta)
        return events

    def _text(self, text: str) -> bytes:
        events = b""
        if self._open != "text":
            events += self._begin("text", wire.AnswerText(type="text", text=""))
        delta = wire.ContentBlockDelta(index=self._index, delta=wire.TextDelta(text=text))
        return events + wire.sse(delta)

    def _tool(self, delta: ToolCallDelta) -> bytes:
        events = b""
        block = self._tools.get(delta.index)
        if block is None:
            use = wire.AnswerToolUse(
                type="tool_use",
                id=delta.id or "toolu_" + secrets.token_hex(12),
                name=delta.name or "",
                input={},
            )
            events += self._begin("tool", use)
            block = self._tools[delta.index] = self._index
        if delta.arguments:
            piece = wire.ContentBlockDelta(
                index=block, delta=wire.InputJsonDelta(partial_json=delta.arguments)
            )
            events += wire.sse(piece)
        return events

    def _begin(self, kind: str, block: Any) -> bytes:
        events = self._close()
        self._index += 1
        self._open = kind
        return events + wire.sse(wire.ContentBlockStart(index=self._index, content_block=block))

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return wire.sse(wire.ContentBlockStop(index=self._index))

    def end(self, finish_reason: str | None, usage: Usage | None) -> bytes:
        counted = usage_object(usage) if usage is not None else wire.Usage()
        delta = wire.MessageDelta(
            delta=wire.MessageDeltaBody(stop_reason=stop_reason(finish_reason)),
            usage=wire.DeltaUsage(**counted.model_dump()),
        )
        return self._close() + wire.sse(delta) + wire.sse(wire.MessageStop())

    def error(self, message: str) -> bytes:
        body = wire.ErrorBody(error=wire.ErrorDetail(type="api_error", message=message))
        return wire.sse(body)
