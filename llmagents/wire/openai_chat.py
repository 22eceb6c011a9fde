"""OpenAI's chat completions wire format: request, answer, stream chunk and error.

Spoken by the gateway's ``/v1/chat/completions`` (reads requests, writes answers and
chunks), the OpenAI-compatible adapter (writes requests, reads answers and chunks), the
ONNX sidecar (reads requests, writes answers) and the fake OpenAI server (both). Field
names, bounds and defaults follow OpenAI's API reference; what the reference bounds is
bounded here, so that the gateway refuses with a 400 what OpenAI would refuse, before any
provider is called.

Requests are strict (``StrictWireModel``): ``max_tokens: true`` or ``temperature: "1"``
are refused, integers are bounded so that none overflows a provider's parser, and fields
not named here are kept and passed on to OpenAI-compatible providers (``logprobs``,
``reasoning_effort``, ``metadata``...). Answers and chunks are lenient: compatible servers
differ in what they fill in.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from llmagents.wire import StrictWireModel, WireModel, extras, finite_json

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STOP_SEQUENCES = 4
MAX_TOOLS = 128
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"

# -- request ----------------------------------------------------------------------------------


class TextPart(StrictWireModel):
    type: Literal["text"]
    text: str


class ImageURL(StrictWireModel):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(StrictWireModel):
    type: Literal["image_url"]
    image_url: ImageURL


class RefusalPart(StrictWireModel):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(StrictWireModel):
    name: str
    arguments: str
    """The arguments as the JSON text the model produced (not necessarily valid JSON)."""


class ToolCall(StrictWireModel):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(StrictWireModel):
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(StrictWireModel):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(StrictWireModel):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    name: str | None = None


class ToolMessage(StrictWireModel):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str = Field(min_length=1)


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


class FunctionDefinition(StrictWireModel):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """A JSON Schema object; absent means a function without parameters."""
    strict: bool | None = None


class FunctionTool(StrictWireModel):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(StrictWireModel):
    name: str


class NamedToolChoice(StrictWireModel):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class TextFormat(StrictWireModel):
    type: Literal["text"]


class JsonObjectFormat(StrictWireModel):
    type: Literal["json_object"]


class JsonSchema(StrictWireModel):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(StrictWireModel):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


class StreamOptions(StrictWireModel):
    include_usage: bool | None = None


PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]


class ChatCompletionRequest(StrictWireModel):
    """``POST /v1/chat/completions``. ``n`` other than 1 is refused: one answer per call."""

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: PositiveInt32 | None = None
    max_completion_tokens: PositiveInt32 | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    n: int | None = Field(default=None, ge=1, le=1)
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = Field(default=None)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[FunctionTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _checked(self) -> ChatCompletionRequest:
        if isinstance(self.stop, list) and len(self.stop) > MAX_STOP_SEQUENCES:
            raise ValueError(f"stop: at most {MAX_STOP_SEQUENCES} sequences")
        schemas = [t.function.parameters for t in self.tools or ()]
        if isinstance(self.response_format, JsonSchemaFormat):
            schemas.append(self.response_format.json_schema.schema_)
        if not finite_json(extras(self)) or not finite_json(schemas):
            raise ValueError("numbers must be finite (no NaN or Infinity) and nesting bounded")
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or ()}
            if self.tool_choice.function.name not in names:
                raise ValueError(
                    f"tool_choice names the function {self.tool_choice.function.name!r}, "
                    "which is not among tools"
                )
        return self

    @property
    def output_limit(self) -> int | None:
        """``max_completion_tokens``, else the deprecated ``max_tokens``."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    @property
    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s] or None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# -- answer -----------------------------------------------------------------------------------


class PromptTokensDetails(WireModel):
    cached_tokens: int | None = None


class CompletionTokensDetails(WireModel):
    reasoning_tokens: int | None = None


class CompletionUsage(WireModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class AnswerFunctionCall(WireModel):
    name: str
    arguments: str = ""


class AnswerToolCall(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: AnswerFunctionCall


class AnswerMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[AnswerToolCall] | None = None
    reasoning_content: str | None = None
    """The model's visible reasoning, as vLLM, DeepSeek and others write it (not OpenAI's
    own API, which shows none); OpenRouter and newer vLLM name it ``reasoning``."""

    @property
    def reasoning_text(self) -> str:
        other = extras(self).get("reasoning")
        return self.reasoning_content or (other if isinstance(other, str) else "")


class Choice(WireModel):
    index: int = 0
    message: AnswerMessage
    logprobs: Any = None
    finish_reason: str | None = None


class ChatCompletion(WireModel):
    """A complete answer."""

    id: str = ""
    object: Literal["chat.completion"] = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


# -- stream -----------------------------------------------------------------------------------


class FunctionDelta(WireModel):
    name: str | None = None
    arguments: str | None = None

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ToolCallDelta(WireModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDelta | None = None

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class Delta(WireModel):
    """What a chunk adds; written with only the fields it sets, as OpenAI writes it (the
    final chunk's delta is ``{}``)."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @property
    def reasoning_text(self) -> str:
        other = extras(self).get("reasoning")
        return self.reasoning_content or (other if isinstance(other, str) else "")

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChunkChoice(WireModel):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    logprobs: Any = None
    finish_reason: str | None = None


class ChatCompletionChunk(WireModel):
    """One ``data:`` event of a stream; the usage-only chunk has empty ``choices``."""

    id: str = ""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: CompletionUsage | None = None


# -- errors and models ------------------------------------------------------------------------


class ErrorDetail(WireModel):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(WireModel):
    """OpenAI's ``{"error": {...}}``; older vLLM puts the fields at the top with
    ``"object": "error"`` (read by the adapter, never written)."""

    error: ErrorDetail


def error_body(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An error answer as OpenAI writes it, ready for ``json.dumps``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ModelCard(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def describe(invalid: ValidationError) -> tuple[str, str | None]:
    """A refusal's message and ``param`` (``messages[0].content``, as OpenAI names fields)
    for a request that failed validation: its most specific error, and how many more."""
    errors = invalid.errors(include_url=False)
    # Of a union's failed members, the one that got furthest says most.
    error = max(errors, key=lambda e: len(e["loc"]))
    if error["type"] == "json_invalid":
        return f"the request body is not valid JSON: {error['msg']}", None
    param = ""
    previous: str | int | None = None
    for part in error["loc"]:
        if isinstance(part, int):
            param += f"[{part}]"
        elif not _union_member(part, previous):
            param += f".{part}" if param else part
        previous = part
    count = invalid.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    where = f"'{param}': " if param else ""
    return f"Invalid request: {where}{error['msg']}{more}", param or None


def _union_member(part: str, previous: str | int | None) -> bool:
    """Whether a location part names the member of a union tried, not a field: unions add
    it (``messages.0.user.content.str``), and a client wants the path in its own request."""
    if part in ("str", "int", "float", "bool", "none", "list", "dict"):
        return True
    if part.startswith(("list[", "dict[", "literal[", "function-", "json-or-python")):
        return True
    if part[:1].isupper():  # a model's name: NamedToolChoice, TextPart...
        return True
    # A discriminated union's tag, right after the list index or field that holds it.
    return part in _TAGS and (isinstance(previous, int) or previous in _TAGGED_FIELDS)


_TAGS = frozenset({"system", "developer", "user", "assistant", "tool", "text", "image_url",
                   "refusal", "json_object", "json_schema"})  # fmt: skip
_TAGGED_FIELDS = frozenset({"response_format"})


STREAM_DONE = b"data: [DONE]\n\n"


def sse(document: WireModel | dict[str, Any]) -> bytes:
    """One ``data:`` event of an OpenAI stream."""
    if isinstance(document, dict):
        return b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"
    return b"data: " + document.model_dump_json().encode() + b"\n\n"
