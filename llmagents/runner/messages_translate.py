"""Translation between Anthropic's Messages API and the provider-neutral chat model.

Pure functions, no I/O: the ``/v1/messages`` route
(``front_messages``) parses a body with ``parse_messages``, answers through the gateway's
neutral path, and writes the answer with ``message_object`` or, streamed, with
``MessagesStream`` (``messages_stream``).

``system`` becomes a system message. A user message's ``tool_result`` blocks become tool
messages answering their ``tool_use_id`` (in order, before the rest of that message); an
assistant message's ``tool_use`` blocks become its tool calls, their ``input`` the call's
JSON arguments; ``thinking`` blocks carry no content another provider can read and are
kept as the turn's reasoning. A ``tool_use`` id is the chat model's tool-call id, so a
conversation continues on any provider with the ids the client knows. ``top_k``,
``metadata``, ``service_tier`` and ``thinking`` reach an Anthropic provider unchanged;
other protocols have no place for them.

Thinking blocks: the client sees those of an Anthropic provider with their ``signature``
(or ``redacted_thinking`` ``data``) prefixed by ``llmagents~<provider>~``, and sends them
back so; the prefix tells which provider made them, and only that provider gets them back,
unprefixed, as it sent them. A fallback to any other provider leaves them out, since no
other provider can verify them (``docs/gateway.md``).
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
    Reasoning,
    ReasoningEffort,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    Usage,
    effort_for_budget,
)
from llmagents.runner.chat_path import Refusal
from llmagents.runner.reasoning_tags import tag, untag
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


def thinking_blocks(reasoning: Iterable[Reasoning]) -> list[Any]:
    """The answer's reasoning as Anthropic's blocks. Another protocol's visible reasoning
    (OpenAI-compatible ``reasoning_content``, Gemini's thoughts) is a thinking block without
    a signature: shown, and left out when the client sends it back."""
    blocks: list[Any] = []
    for item in reasoning:
        if item.redacted is not None:
            data = tag(item.provider, item.redacted)
            blocks.append(wire.AnswerRedactedThinking(type="redacted_thinking", data=data))
        else:
            signature = tag(item.provider, item.signature) if item.signature else ""
            blocks.append(wire.AnswerThinking(type="thinking", thinking=item.text,
                                              signature=signature))  # fmt: skip
    return blocks


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
        reasoning_effort=_effort(extras(request).get("thinking")),
        passthrough=_passthrough(request),
    )


def _effort(thinking: Any) -> ReasoningEffort | None:
    """The effort a request's ``thinking`` stands for with the other protocols' providers
    (an Anthropic provider gets the ``thinking`` itself, which wins over an effort)."""
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "disabled":
        return ReasoningEffort.NONE
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or not isinstance(budget, int):
        return None
    return effort_for_budget(budget)


def _passthrough(request: wire.MessagesRequest) -> dict[str, dict[str, Any]]:
    """What an Anthropic provider also gets unchanged: ``top_k``, ``metadata``,
    ``service_tier`` and ``thinking`` (its blocks come back to the client and return to
    the provider that made them)."""
    kept = extras(request)
    out = {
        name: kept[name]
        for name in ("metadata", "service_tier", "thinking")
        if kept.get(name) is not None
    }
    if request.top_k is not None:
        out["top_k"] = request.top_k
    return {"anthropic": out} if out else {}


def _assistant(blocks: Iterable[Any], calls: dict[str, str]) -> Message:
    text: list[str] = []
    tool_calls: list[ToolCall] = []
    reasoning: list[Reasoning] = []
    for block in blocks:
        if isinstance(block, wire.TextBlock):
            text.append(block.text)
        elif isinstance(block, wire.ToolUseBlock):
            tool_calls.append(ToolCall(block.id, block.name, json.dumps(block.input)))
            calls[block.id] = block.name
        elif isinstance(block, wire.ThinkingBlock) and block.signature:
            provider, signature = untag(block.signature)
            reasoning.append(Reasoning(block.thinking, signature=signature, provider=provider))
        elif isinstance(block, wire.RedactedThinkingBlock):
            provider, data = untag(block.data)
            reasoning.append(Reasoning(redacted=data, provider=provider))
        # images and tool results cannot be an assistant's; unsigned thinking verifies nowhere
    return Message(Role.ASSISTANT, "".join(text), tool_calls=tuple(tool_calls),
                   reasoning=tuple(reasoning))  # fmt: skip


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
        if not request.tools:  # served, the answer would be text and the demand lost
            raise Refusal(400, 'tool_choice "any" demands a tool call, and the request has '
                               "no tools", param="tool_choice")  # fmt: skip
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
    reasoning: Iterable[Reasoning] = (),
) -> wire.Message:
    content: list[Any] = thinking_blocks(reasoning)
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
