"""The Responses API's request (``POST /v1/responses``), validated strictly.

The stateless form the gateway serves, with ``stateful_reason`` saying why a request that
needs stored state is refused; see the package's docstring.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from llmagents.wire import StrictWireModel, extras, finite_json
from llmagents.wire.openai_chat import PositiveInt32, ReasoningEffortName


class InputText(StrictWireModel):
    type: Literal["input_text"]
    text: str


class InputImage(StrictWireModel):
    """An image by URL (``https://`` or a ``data:`` URL); ``file_id`` needs OpenAI's file
    store and is refused."""

    type: Literal["input_image"]
    image_url: str
    detail: Literal["low", "high", "auto", "original"] | None = None


class OutputText(StrictWireModel):
    """Text the model produced earlier, sent back in an assistant message."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] = Field(default_factory=list)


class OutputRefusal(StrictWireModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    InputText | InputImage | OutputText | OutputRefusal, Field(discriminator="type")
]


class MessageItem(StrictWireModel):
    """A message; ``type`` may be left out (the SDKs' "easy" input message)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(StrictWireModel):
    """A call the model made, sent back so the next turn sees it."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(StrictWireModel):
    """The client's result of a function call, answering ``call_id``."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None


class CustomToolCallItem(StrictWireModel):
    """A call of a custom (free-text input) tool the model made, sent back."""

    type: Literal["custom_tool_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: str
    id: str | None = None


class CustomToolCallOutputItem(StrictWireModel):
    """The client's result of a custom tool call, answering ``call_id``."""

    type: Literal["custom_tool_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ContentPart]
    id: str | None = None


class ReasoningItem(StrictWireModel):
    """A reasoning model's reasoning, sent back by clients: its summary, and the
    ``encrypted_content`` the gateway handed out (its provider's signed or redacted block),
    which goes back to that provider only."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[dict[str, Any]] = Field(default_factory=list)
    encrypted_content: str | None = None

    @property
    def summary_text(self) -> str:
        return "".join(s["text"] for s in self.summary if isinstance(s.get("text"), str))


class ItemReference(StrictWireModel):
    """A reference to a stored item: refused, the gateway stores nothing."""

    type: Literal["item_reference"]
    id: str


def _item_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "message" if "role" in value else None)
    return getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(_item_tag),
]


class FunctionTool(StrictWireModel):
    """A function the model may call; the only tool type the gateway routes (hosted tools
    such as ``web_search`` or ``file_search`` run inside OpenAI and have no equivalent at
    other providers)."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomFormatText(StrictWireModel):
    type: Literal["text"]


class CustomFormatGrammar(StrictWireModel):
    type: Literal["grammar"]
    syntax: Literal["lark", "regex"]
    definition: str


CustomFormat = Annotated[CustomFormatText | CustomFormatGrammar, Field(discriminator="type")]


class CustomTool(StrictWireModel):
    """A tool whose input is free text rather than JSON arguments (Codex's ``apply_patch``).
    Other providers get it as a function of one string argument, ``input``; a grammar
    becomes part of its description, which the model reads but no provider enforces."""

    type: Literal["custom"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    format: CustomFormat | None = None


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class ToolChoiceFunction(StrictWireModel):
    """A named tool the model must call: ``function`` or ``custom``."""

    type: Literal["function", "custom"]
    name: str = Field(min_length=1)


class TextFormatText(StrictWireModel):
    type: Literal["text"]


class TextFormatJsonObject(StrictWireModel):
    type: Literal["json_object"]


class TextFormatJsonSchema(StrictWireModel):
    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    json_schema: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[
    TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")
]


class TextConfig(StrictWireModel):
    format: TextFormat | None = None


_Temperature = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
_TopP = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


ENCRYPTED_REASONING = "reasoning.encrypted_content"


class ReasoningConfig(StrictWireModel):
    """``reasoning``: how much a reasoning model thinks, and the summary it shows."""

    effort: ReasoningEffortName | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(StrictWireModel):
    """The body of ``POST /v1/responses``."""

    model: str | None = None
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: PositiveInt32 | None = None
    temperature: _Temperature | None = None
    top_p: _TopP | None = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    prompt: Any = None
    background: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    reasoning: ReasoningConfig | None = None
    include: list[str] | None = None

    @model_validator(mode="after")
    def _finite(self) -> ResponsesRequest:
        if not finite_json(extras(self)):
            raise ValueError("numbers must be finite (no NaN or Infinity) and nesting bounded")
        return self

    @property
    def shows_encrypted_reasoning(self) -> bool:
        """Whether reasoning items carry ``encrypted_content`` (``include``)."""
        return ENCRYPTED_REASONING in (self.include or ())

    def stateful_reason(self) -> tuple[str, str] | None:
        """``(param, message)`` when the request needs state the gateway does not keep."""
        hint = (
            "the llmagents gateway keeps no responses: send the whole conversation as "
            "`input` with store: false"
        )
        if self.previous_response_id:
            return "previous_response_id", f"previous_response_id is not supported: {hint}"
        if self.conversation:
            return "conversation", f"conversation is not supported: {hint}"
        if self.store:
            return "store", f"store: true is not supported: {hint}"
        if self.prompt:
            return (
                "prompt",
                "stored prompt templates (prompt) are not supported: send "
                "instructions and input instead",
            )
        if self.background:
            return (
                "background",
                "background responses are not supported: they are stored "
                "to be polled; stream instead",
            )
        if isinstance(self.input, list):
            for index, item in enumerate(self.input):
                if isinstance(item, ItemReference):
                    return (
                        f"input[{index}]",
                        f"input[{index}]: item_reference is not supported: {hint}",
                    )
        return None
