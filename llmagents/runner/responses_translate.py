"""Translation between OpenAI's Responses API and the provider-neutral chat model.

Pure functions, no I/O: the route (``front_responses``) parses a body with
``parse_responses``, has the ``ChatRequest`` answered like any chat call, and writes the
answer with ``responses_answer.response_object`` or, streamed, with
``responses_stream.ResponsesStream``.

Input items become chat messages in order: ``instructions`` first as a system message,
``developer`` and ``system`` messages as system messages, consecutive ``function_call``
items as one assistant message with parallel tool calls (joined to the assistant text just
before them, as one chat turn), each ``function_call_output`` as a tool message answering its
``call_id``. A call's ``call_id`` is the chat model's tool-call id, so an id survives a
fallback to any provider unchanged. An output that answers no earlier call is refused, as
OpenAI refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from llmagents.chat import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    Reasoning,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from llmagents.runner.chat_path import LOGPROBS_UNSERVED, Refusal
from llmagents.runner.custom_tools import arguments_of, as_function
from llmagents.runner.reasoning_tags import from_encrypted_content
from llmagents.wire import extras
from llmagents.wire.responses import (
    ContentPart as WirePart,
)
from llmagents.wire.responses import (
    CustomTool,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    MessageItem,
    OutputRefusal,
    ReasoningItem,
    ResponsesRequest,
    TextFormatJsonObject,
    TextFormatJsonSchema,
    ToolChoiceFunction,
)

_ROLES = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
}


@dataclass(slots=True)
class ResponsesCall:
    """A parsed ``POST /v1/responses``: the chat request and what the answer echoes."""

    wire: ResponsesRequest
    request: ChatRequest

    @property
    def stream(self) -> bool:
        return self.wire.stream


LOGPROBS_INCLUDE = "message.output_text.logprobs"


def parse_responses(raw: bytes) -> ResponsesCall:
    """The call in a request body; ``Refusal`` (400, OpenAI's shape) when it is not one."""
    try:
        wire = ResponsesRequest.model_validate_json(raw)
    except ValidationError as invalid:
        raise _invalid(invalid) from None
    refused = wire.stateful_reason()
    if refused is not None:
        param, message = refused
        raise Refusal(400, message, param=param, code="unsupported_parameter")
    top = (wire.__pydantic_extra__ or {}).get("top_logprobs")
    if (type(top) is int and top > 0) or LOGPROBS_INCLUDE in (wire.include or ()):
        # No answer through the gateway holds them: served, they would be missing silently.
        raise Refusal(400, f"{LOGPROBS_UNSERVED}; leave out top_logprobs and "
                           f"include {LOGPROBS_INCLUDE!r}", param="top_logprobs",
                      code="unsupported_parameter")  # fmt: skip
    return ResponsesCall(wire, to_chat(wire))


def _invalid(invalid: ValidationError) -> Refusal:
    errors = invalid.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return Refusal(400, "the request body is not valid JSON")
    if first["type"] == "model_type" and not first["loc"]:
        return Refusal(400, "the request body must be a JSON object")
    # A union reports one error per member; the deepest is the one about what was sent.
    error = max(errors, key=lambda e: len(_field_path(e["loc"])))
    path = _field_path(error["loc"])
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    message = f"{param}: {error['msg']}"
    if error["type"] == "union_tag_invalid":
        context = error.get("ctx") or {}
        message = (
            f"{param}: type {context.get('tag')!r} is not supported by the llmagents "
            f"gateway (it takes {context.get('expected_tags')})"
        )
    head = str(path[0]) if path else ""
    if head == "tools":
        message += " (the gateway routes function tools only; hosted tools run inside OpenAI)"
    elif head == "tool_choice":
        message += (
            ' (tool_choice is "auto", "none", "required" or {"type": "function", "name": ...})'
        )
    return Refusal(400, message, param=param or None)


_TAGS = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "item_reference",
        "input_text",
        "input_image",
        "output_text",
        "refusal",
        "text",
        "json_object",
        "json_schema",
        "custom_tool_call",
        "custom_tool_call_output",
        "function",
        "custom",
        "grammar",
    }
)


def _field_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The fields of an error's location without pydantic's union-member labels."""
    path: list[int | str] = []
    for part in loc:
        if isinstance(part, str):
            member = "[" in part or part == "str" or part[:1].isupper()
            tag = part in _TAGS and path and (isinstance(path[-1], int) or path[-1] == "format")
            if member or tag:
                continue
        path.append(part)
    return tuple(path)


def to_chat(wire: ResponsesRequest) -> ChatRequest:
    """The neutral chat request of a validated Responses request."""
    messages: list[Message] = []
    if wire.instructions:
        messages.append(Message(Role.SYSTEM, wire.instructions))
    items = (
        [MessageItem(role="user", content=wire.input)]
        if isinstance(wire.input, str)
        else wire.input
    )
    calls: dict[str, str] = {}
    thought: list[Reasoning] = []
    """Reasoning items waiting for the assistant turn they came before."""
    for index, item in enumerate(items):
        if isinstance(item, MessageItem):
            role = _ROLES[item.role]
            reasoning = tuple(thought) if role is Role.ASSISTANT else ()
            messages.append(Message(role, _content(item, index), reasoning=reasoning))
            thought.clear()
        elif isinstance(item, FunctionCallItem):
            _add_call(messages, ToolCall(item.call_id, item.name, item.arguments), thought)
            calls[item.call_id] = item.name
        elif isinstance(item, CustomToolCallItem):
            _add_call(messages, ToolCall(item.call_id, item.name, arguments_of(item.input)),
                      thought)  # fmt: skip
            calls[item.call_id] = item.name
        elif isinstance(item, ReasoningItem):
            block = (
                from_encrypted_content(item.summary_text, item.encrypted_content)
                if item.encrypted_content
                else None
            )
            if block is not None:
                thought.append(block)
        elif isinstance(item, FunctionCallOutputItem | CustomToolCallOutputItem):
            if item.call_id not in calls:
                raise Refusal(
                    400,
                    f"input[{index}]: no call with call_id {item.call_id!r} comes before "
                    f"this {item.type}",
                    param=f"input[{index}].call_id",
                )
            output = (
                item.output
                if isinstance(item.output, str)
                else _parts(item.output, index, allow_images=True)
            )
            messages.append(
                Message(Role.TOOL, output, tool_call_id=item.call_id, name=calls[item.call_id])
            )
        # A reasoning item without encrypted content the gateway handed out carries nothing
        # a provider could verify: its summary was shown, and is not sent back.
    if not any(m.role is not Role.SYSTEM for m in messages):
        raise Refusal(
            400, "input must hold at least one message or tool call output", param="input"
        )
    return ChatRequest(
        messages,
        max_tokens=wire.max_output_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        tools=tuple(
            as_function(t)
            if isinstance(t, CustomTool)
            else Tool(t.name, t.description, t.parameters or {"type": "object"}, t.strict)
            for t in wire.tools
        ),
        tool_choice=_tool_choice(wire),
        parallel_tool_calls=wire.parallel_tool_calls,
        response_format=_response_format(wire),
        reasoning_effort=(
            ReasoningEffort(wire.reasoning.effort)
            if wire.reasoning is not None and wire.reasoning.effort is not None
            else None
        ),
        passthrough=_passthrough(wire),
    )


_SAME_IN_CHAT = ("prompt_cache_key", "safety_identifier", "service_tier")
"""Responses fields that OpenAI's chat completions take under the same name."""


def _passthrough(wire: ResponsesRequest) -> dict[str, dict[str, Any]]:
    """What an OpenAI-compatible provider also gets: the request's fields that chat
    completions take too. Other protocols have no place for them. (``reasoning.effort`` is
    the chat request's own ``reasoning_effort``, which every adapter translates.)"""
    kept = extras(wire)
    out = {name: kept[name] for name in _SAME_IN_CHAT if kept.get(name) is not None}
    if wire.user is not None:
        out["user"] = wire.user
    return {"openai": out} if out else {}


def _add_call(messages: list[Message], call: ToolCall, thought: list[Reasoning]) -> None:
    """Consecutive calls (and the assistant text before them) are one assistant turn, with
    the reasoning that came before them."""
    last = messages[-1] if messages else None
    if last is not None and last.role is Role.ASSISTANT:
        messages[-1] = Message(Role.ASSISTANT, last.content, tool_calls=(*last.tool_calls, call),
                               reasoning=(*last.reasoning, *thought))  # fmt: skip
    else:
        messages.append(Message(Role.ASSISTANT, "", tool_calls=(call,), reasoning=tuple(thought)))
    thought.clear()


def _content(item: MessageItem, index: int) -> str | tuple[ContentPart, ...]:
    if isinstance(item.content, str):
        return item.content
    parts = _parts(item.content, index, allow_images=item.role == "user")
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    return parts


def _parts(parts: Iterable[WirePart], index: int, *, allow_images: bool) -> tuple[ContentPart, ...]:
    out: list[ContentPart] = []
    for part in parts:
        if isinstance(part, InputImage):
            if not allow_images:
                raise Refusal(
                    400,
                    f"input[{index}]: images are only taken in user messages "
                    "and function call outputs",
                    param=f"input[{index}].content",
                )
            out.append(ImagePart(part.image_url, part.detail))
        elif isinstance(part, OutputRefusal):
            out.append(TextPart(part.refusal))
        else:
            out.append(TextPart(part.text))
    return tuple(out)


def _tool_choice(wire: ResponsesRequest) -> ToolChoice | None:
    choice = wire.tool_choice
    if choice is None:
        return None
    if isinstance(choice, ToolChoiceFunction):
        if choice.name not in {t.name for t in wire.tools}:
            raise Refusal(
                400,
                f"tool_choice names tool {choice.name!r}, which is not among the request's tools",
                param="tool_choice",
            )
        return ToolChoice(ToolChoiceMode.REQUIRED, choice.name)
    if choice == "required" and not wire.tools:  # "auto" and "none" demand nothing
        raise Refusal(400, '"required" demands a tool call, and the request has no tools',
                      param="tool_choice")  # fmt: skip
    return ToolChoice(ToolChoiceMode(choice))


def _response_format(wire: ResponsesRequest) -> ResponseFormat | None:
    form = wire.text.format if wire.text is not None else None
    if isinstance(form, TextFormatJsonSchema):
        return ResponseFormat(
            ResponseFormatType.JSON_SCHEMA, form.json_schema, form.name, form.strict
        )
    if isinstance(form, TextFormatJsonObject):
        return ResponseFormat(ResponseFormatType.JSON_OBJECT)
    return None
