"""The work and budget parts of an LLMAgent spec that the engine and runner read.

``TaskSpec`` is one unit of work of an agent's task list; ``BudgetSpec`` its spending limit.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from llmagents.api.base import ApiModel, cel
from llmagents.api.pool import DNS_LABEL
from llmagents.chat import Role


class Complexity(StrEnum):
    """How demanding a task is, for choosing a provider tier."""

    SIMPLE = "simple"
    """Short or routine: the fast, cheap tier is enough."""
    MEDIUM = "medium"
    """Follows the pool's strategy unchanged."""
    COMPLEX = "complex"
    """Long or hard: the quality tier first."""


class BudgetPeriod(StrEnum):
    """The span over which spend counts against the limit."""

    TOTAL = "total"
    """Over the agent's whole life."""
    DAILY = "daily"
    """Per UTC calendar day."""
    MONTHLY = "monthly"
    """Per UTC calendar month."""


class OnExhausted(StrEnum):
    """What the agent does when its budget is spent."""

    STOP = "stop"
    """Stop calling providers; the agent scales to zero with phase BudgetExhausted."""
    LOCAL_ONLY = "local-only"
    """Continue on free providers only (the local ONNX model)."""


class BudgetSpec(ApiModel):
    """A hard spending limit in US dollars."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.limit > 0.0",
                "budget.limit must be a positive amount of USD for the budget period; "
                "leave budget out for no limit",
            )
        )
    )

    limit: float = Field(gt=0, description="Maximum spend in USD per period.")
    period: BudgetPeriod = Field(
        default=BudgetPeriod.TOTAL, description="The span the limit applies to."
    )
    on_exhausted: OnExhausted = Field(
        default=OnExhausted.STOP, description="What happens when the limit is reached."
    )


class ChatMessage(ApiModel):
    """One message of a task's conversation."""

    role: Role = Field(description="Who speaks: system, user or assistant.")
    content: str = Field(description="The message text.")


JsonObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class ResponseFormatSpec(ApiModel):
    """Structured output: the task's answer must be JSON that satisfies a JSON Schema.

    Providers that support it are asked to constrain their answer to the schema; every
    answer is validated against it before the task counts as done. An answer that fails is
    a malformed answer of that provider: retried and fallen back from by the pool's retry
    policy, its tokens charged; when no provider's answer passes, the task fails naming why.
    """

    name: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z0-9_-]{1,64}$",
        description="Name of the format, sent to providers that take one; the task's name "
        "when unset.",
    )
    json_schema: JsonObject = Field(
        alias="schema",
        description="The JSON Schema (draft 2020-12) the answer must satisfy, for example "
        "an object with required properties.",
    )
    strict: bool | None = Field(
        default=None,
        description="Ask providers with a strict mode (OpenAI) to follow the schema exactly; "
        "their strict mode needs every property required and additionalProperties false.",
    )

    @field_validator("json_schema")
    @classmethod
    def _a_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        import jsonschema  # ~0.1 s of import, for the few tasks with a responseFormat schema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as wrong:
            where = "/".join(str(p) for p in wrong.absolute_path) or "(root)"
            raise ValueError(f"responseFormat.schema is not a valid JSON Schema at {where}: "
                             f"{wrong.message}") from None  # fmt: skip
        return schema


class TaskSpec(ApiModel):
    """One unit of work: a prompt or a conversation sent through the engine."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.prompt) != has(self.messages)", "set exactly one of prompt or messages")
        )
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Identifier of the task, unique in the agent; completed names are checkpointed.",
    )
    prompt: str | None = Field(default=None, description="A single user prompt.")
    system: str | None = Field(default=None, description="Optional system prompt.")
    messages: list[ChatMessage] | None = Field(
        default=None, description="A full conversation, instead of prompt."
    )
    complexity: Complexity | None = Field(
        default=None, description="How demanding the task is; derived from its size when unset."
    )
    estimated_input_tokens: int | None = Field(
        default=None, ge=0, description="Expected prompt tokens, for choosing; counted when unset."
    )
    estimated_output_tokens: int | None = Field(
        default=None, ge=0, description="Expected answer tokens, for choosing and budget checks."
    )
    max_output_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Upper bound on the answer's length."
    )
    response_format: ResponseFormatSpec | None = Field(
        default=None,
        description="Structured output: the answer must be JSON valid against a schema "
        "before the task counts as done; free text when unset.",
    )

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> TaskSpec:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"task {self.name!r}: set exactly one of prompt or messages")
        return self
