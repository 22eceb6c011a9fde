"""The provider-neutral chat call: what the runner asks and what any provider answers.

Adapters translate these to and from each provider's wire format; the engine reads only
``Usage`` from an answer (cost comes from real usage, never from estimates). Plain
dataclasses: they are created on every call, so they stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Who speaks a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(slots=True)
class ChatRequest:
    """One chat completion request; ``model`` is filled per provider by its adapter."""

    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None


@dataclass(slots=True)
class Usage:
    """Tokens a provider reports it consumed for one call."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(slots=True)
class ChatResponse:
    """A complete answer from one provider."""

    text: str
    usage: Usage
    model: str
    finish_reason: str | None = None
    provider: str = ""


@dataclass(slots=True)
class StreamChunk:
    """A piece of a streamed answer; the last chunk of a stream carries usage and finish."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
