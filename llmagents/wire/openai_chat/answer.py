"""A complete chat completions answer, and the model list of ``GET /v1/models``.

Lenient (``WireModel``): compatible servers differ in what they fill in, and what they add
is kept.
"""

from __future__ import annotations

from typing import Any, Literal

from llmagents.wire import WireModel, extras


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
    reasoning_details: list[Any] | None = None
    """OpenRouter's reasoning blocks (``reasoning.text`` with its ``signature``,
    ``reasoning.summary``, ``reasoning.encrypted``); ``reasoning`` is their text joined."""

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


class ModelCard(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = ""


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
