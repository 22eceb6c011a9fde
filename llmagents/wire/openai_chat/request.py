"""A chat completions request (``POST /v1/chat/completions``), as strict as OpenAI's API.

What the reference bounds is bounded here, so that the gateway refuses with a 400 what
OpenAI would refuse, before any provider is called: ``max_tokens: true`` or
``temperature: "1"`` are refused, integers are bounded so that none overflows a provider's
parser, and fields not named here are kept and passed on to OpenAI-compatible providers
(``logprobs``, ``metadata``...). ``reasoning_effort`` is named: every provider gets it in its
own terms, so it must be one of the efforts OpenAI's API takes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmagents.wire import StrictWireModel, extras, finite_json

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STOP_SEQUENCES = 4
MAX_TOOLS = 128
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


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


def content_text(content: str | list[Any] | None) -> str:
    """A message's content as text: the string itself, or its text and refusal parts joined
    (an image part adds nothing)."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(getattr(p, "text", "") or getattr(p, "refusal", "") for p in content)


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
ReasoningEffortName = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


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
    reasoning_effort: ReasoningEffortName | None = None
    user: str | None = None

    @field_validator("tool_choice")
    @classmethod
    def _demand_needs_tools(cls, choice: Any, info: ValidationInfo) -> Any:
        """OpenAI's API refuses ``required`` without tools; served, the answer would be text
        and the client's demand for a call silently lost."""
        if choice == "required" and "tools" in info.data and not info.data["tools"]:
            raise ValueError('"required" demands a tool call, and the request has no tools')
        return choice

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
