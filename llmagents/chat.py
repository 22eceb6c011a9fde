"""The provider-neutral chat call: what the runner asks and what any provider answers.

Adapters translate these to and from each provider's wire format (``llmagents.providers``),
and the gateway's front doors (OpenAI chat, OpenAI Responses, Anthropic Messages) translate
their clients' requests into them, so one conversation can move between providers in the
middle: a tool call made on Anthropic is answered on OpenAI or Gemini with the same
history. The engine reads only ``Usage`` from an answer (cost comes from real usage, never
from estimates) and ``ChatRequest.required_capabilities()`` to skip providers that cannot
serve a request.

Plain dataclasses: they are created on every call, so they stay cheap. Validation happens
at the edges (the gateway's wire models, the CRD models), not here.

Tool-call ids are the client's: a ``ToolCall.id`` is whatever the provider that made the
call returned, or what the client sent back in its history. An adapter whose protocol
restricts ids (Anthropic's pattern, Gemini's lack of them) maps them at its edge and back,
so that the ids a client sees never depend on which provider answered.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    """Who speaks a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    """The result of a tool call, answering the assistant message that made it."""


class Capability(StrEnum):
    """What a request may need from a provider beyond plain text chat."""

    TOOLS = "tools"
    """Function tools: definitions, calls and results in the conversation."""
    VISION = "vision"
    """Images in the input."""
    JSON_SCHEMA = "jsonSchema"
    """Structured output: JSON constrained by a JSON Schema (``response_format: json_schema``),
    or any JSON object (``json_object``)."""
    STREAMING = "streaming"
    """Answers streamed as they are generated."""


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text within a message's content."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message's content: an ``https://`` URL or a ``data:`` URL.

    Providers that only take inline bytes (Anthropic, Gemini) read ``data_url_parts()``;
    a remote URL is passed where the protocol allows one.
    """

    url: str
    detail: str | None = None
    """OpenAI's ``low``/``high``/``auto`` hint; other providers ignore it."""

    def data_url_parts(self) -> tuple[str, bytes] | None:
        """``(media type, bytes)`` of a base64 ``data:`` URL, or ``None`` for any other URL
        (or a data URL that is not base64)."""
        if not self.url.startswith("data:"):
            return None
        head, sep, payload = self.url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            return None
        try:
            return media_type or "application/octet-stream", base64.b64decode(
                payload, validate=True
            )
        except (binascii.Error, ValueError):
            return None


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's call of a function tool: arguments as the JSON text the model produced."""

    id: str
    name: str
    arguments: str


class ReasoningEffort(StrEnum):
    """How much a reasoning model thinks before it answers: OpenAI's ``reasoning_effort``
    (``reasoning.effort`` in its Responses API), the gateway's one control for every
    provider. Each adapter turns it into its protocol's own (``budget_tokens``)."""

    NONE = "none"
    """No reasoning: the provider's own switch turned off, where it has one."""
    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"

    @property
    def budget_tokens(self) -> int:
        """The thinking budget this effort stands for where a protocol takes a number of
        tokens (Anthropic's ``budget_tokens``, Gemini 2.5's ``thinkingBudget``)."""
        return THINKING_BUDGETS[self]


THINKING_BUDGETS = {
    ReasoningEffort.NONE: 0,
    ReasoningEffort.MINIMAL: 1024,
    ReasoningEffort.LOW: 2048,
    ReasoningEffort.MEDIUM: 8192,
    ReasoningEffort.HIGH: 16384,
    ReasoningEffort.XHIGH: 32768,
}
"""Tokens of thinking per effort (``docs/gateway.md`` shows the table); 1024 is the least
Anthropic takes."""


def effort_for_budget(budget_tokens: int) -> ReasoningEffort:
    """The least effort whose thinking budget holds ``budget_tokens`` (``xhigh`` beyond the
    table): how a protocol that takes a number of tokens asks one that takes an effort."""
    for effort, budget in THINKING_BUDGETS.items():
        if effort is not ReasoningEffort.NONE and budget >= budget_tokens:
            return effort
    return ReasoningEffort.XHIGH


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The model's reasoning before its answer, as far as its provider shows it.

    ``text`` is the visible part (Anthropic's ``thinking``, OpenAI-compatible servers'
    ``reasoning_content``, Gemini's thought summaries); ``signature`` (Anthropic's) or
    ``redacted`` (the opaque data of a ``redacted_thinking`` block) must go back unchanged
    in later turns, and only to ``provider``, the pool member that produced it: no other
    provider can verify it, so adapters leave out what is not their own.
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    provider: str | None = None
    """The pool provider that produced it; ``None`` when unknown (a client's own history)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    ``content`` is plain text or a sequence of parts (text and images). An assistant
    message may carry ``tool_calls`` (several at once: parallel calls); a ``TOOL`` message
    answers the call named by ``tool_call_id`` and ``name``.
    """

    role: Role
    content: str | tuple[ContentPart, ...] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: tuple[Reasoning, ...] = ()
    """An assistant turn's reasoning, in order, before its text and calls."""

    @property
    def text(self) -> str:
        """The message's text: its string content, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        if isinstance(self.content, str):
            return ()
        return tuple(part for part in self.content if isinstance(part, ImagePart))


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class ToolChoiceMode(StrEnum):
    """Whether the model may, must or must not call a tool."""

    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``mode``, or with ``name`` set: the model must call exactly that function."""

    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str | None = None


class ResponseFormatType(StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The answer's form: free text, any JSON object, or JSON valid against ``schema``."""

    type: ResponseFormatType = ResponseFormatType.TEXT
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


class FinishReason(StrEnum):
    """Why an answer ended, in OpenAI's vocabulary (the gateway's clients speak it); each
    adapter maps its protocol's reasons to these."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"


@dataclass(slots=True)
class ChatRequest:
    """One chat completion request; the provider's model is filled in by its adapter."""

    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None
    """How much a reasoning model should think; ``None`` leaves it to the provider."""
    passthrough: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Fields a client sent in a protocol's request that this model does not name, by protocol
    (``"openai"``, ``"anthropic"``): an adapter of the same protocol sends them on unchanged,
    the others leave them out."""

    def required_capabilities(self, *, stream: bool = False) -> frozenset[Capability]:
        """What a provider must support to serve this request."""
        needed: set[Capability] = set()
        if self.tools or any(m.tool_calls or m.role is Role.TOOL for m in self.messages):
            needed.add(Capability.TOOLS)
        if any(m.images for m in self.messages):
            needed.add(Capability.VISION)
        if self.response_format and self.response_format.type is not ResponseFormatType.TEXT:
            # JSON mode without a schema needs the same machinery (constrained decoding or
            # a forced tool); a model without it answers prose.
            needed.add(Capability.JSON_SCHEMA)
        if stream:
            needed.add(Capability.STREAMING)
        return frozenset(needed)


@dataclass(slots=True)
class Usage:
    """Tokens a provider reports it consumed for one call.

    ``cached_input_tokens`` is the part of ``input_tokens`` served from the provider's
    prompt cache, ``cache_write_input_tokens`` the part written to it (Anthropic bills
    those above the input price), ``reasoning_tokens`` the part of ``output_tokens`` spent
    on hidden reasoning; each is priced at its own rate (zero when not reported).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_input_tokens + other.cache_write_input_tokens,
        )


@dataclass(slots=True)
class ChatResponse:
    """A complete answer from one provider: text, tool calls, or both."""

    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    provider: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: tuple[Reasoning, ...] = ()

    @property
    def reasoning_text(self) -> str:
        return "".join(r.text for r in self.reasoning)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. The first piece of call ``index`` carries its ``id``
    and ``name``; later pieces append to its ``arguments`` (as OpenAI's stream does)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    """A piece of a streamed answer; the last chunk of a stream carries usage and finish."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    tool_calls: tuple[ToolCallDelta, ...] = ()
    reasoning: str = ""
    """A piece of the reasoning's visible text; it comes before the answer's text."""
    reasoning_end: Reasoning | None = None
    """The current reasoning block is complete: its ``signature`` (or, alone, a
    ``redacted`` block) and ``provider``; its text came in ``reasoning`` pieces."""
