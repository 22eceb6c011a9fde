"""The values a call through the engine is made of: what is asked, each try, and the answer.

``CallTask`` describes a call before it is made (expected tokens, complexity, filters,
deadline); the engine hands the caller's function one ``Attempt`` per try and returns a
``CallResult`` that tells which provider answered, every attempt and fallback on the way, and
what it cost. These are created on every call, so they are slotted dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from llmagents.api.pool import ProviderSpec
from llmagents.api.work import Complexity, TaskSpec
from llmagents.chat import Capability, Usage
from llmagents.errors import ProviderError
from llmagents.routing.complexity import (
    MESSAGE_OVERHEAD_TOKENS,
    HasContent,
    complexity_for,
    estimate_message_tokens,
    estimate_tokens,
)

DEFAULT_OUTPUT_TOKENS = 512
"""Expected answer length when a task states neither an estimate nor a maximum."""
BUDGET_OUTPUT_LIMIT = 4096
"""Output limit a paid call under a budget gets when its request states none (Anthropic's
adapter sends the same): the budget must know each call's worst case to be a hard cap."""


class HasUsage(Protocol):
    """What the engine reads from an answer: the tokens it really used, if known yet."""

    @property
    def usage(self) -> Usage | None: ...


R = TypeVar("R", bound=HasUsage)


@dataclass(slots=True)
class CallTask:
    """One call to make: its expected size, complexity, and which providers it may use.

    ``complexity`` is derived from ``input_tokens`` when left None. ``providers`` limits the
    call to those names; ``free_only`` to providers that charge nothing; ``capabilities`` to
    providers that have them all (the others are passed over, each recorded as a skip);
    ``deadline`` (seconds) replaces the pool's ``callDeadline`` for this call.
    ``max_output_tokens`` is the limit the request itself states (the budget may lower it
    per attempt, never raise it); ``counted_input_tokens`` is the prompt's size counted from
    its text, which the budget uses when it is larger than a stated ``input_tokens`` (a low
    stated estimate must not buy a call the budget cannot pay).
    """

    input_tokens: int = 0
    output_tokens: int = DEFAULT_OUTPUT_TOKENS
    complexity: Complexity | None = None
    free_only: bool = False
    providers: frozenset[str] | None = None
    deadline: float | None = None
    name: str = ""
    capabilities: frozenset[Capability] = frozenset()
    max_output_tokens: int | None = None
    counted_input_tokens: int = 0

    def __post_init__(self) -> None:
        if self.complexity is None:
            self.complexity = complexity_for(self.input_tokens)

    @property
    def budget_input_tokens(self) -> int:
        """Input tokens the budget reserves for: the larger of the stated and counted size."""
        return max(self.input_tokens, self.counted_input_tokens)

    @classmethod
    def from_messages(
        cls,
        messages: Iterable[HasContent],
        *,
        complexity: Complexity | None = None,
        max_output_tokens: int | None = None,
        estimated_output_tokens: int | None = None,
        free_only: bool = False,
        providers: Iterable[str] | None = None,
        deadline: float | None = None,
        name: str = "",
        capabilities: frozenset[Capability] = frozenset(),
    ) -> CallTask:
        """A task for a conversation, its input estimated from the text's length."""
        counted = estimate_message_tokens(messages)
        return cls(
            input_tokens=counted,
            output_tokens=_output_estimate(estimated_output_tokens, max_output_tokens),
            complexity=complexity,
            free_only=free_only,
            providers=frozenset(providers) if providers is not None else None,
            deadline=deadline,
            name=name,
            capabilities=capabilities,
            max_output_tokens=max_output_tokens,
            counted_input_tokens=counted,
        )

    @classmethod
    def from_spec(cls, spec: TaskSpec, *, deadline: float | None = None) -> CallTask:
        """A task for an agent's ``TaskSpec``, using its stated estimates where it has them."""
        if spec.messages is not None:
            counted = estimate_message_tokens(spec.messages)
        else:
            texts = [t for t in (spec.system, spec.prompt) if t is not None]
            counted = sum(estimate_tokens(t) + MESSAGE_OVERHEAD_TOKENS for t in texts)
        stated = spec.estimated_input_tokens
        return cls(
            input_tokens=stated if stated is not None else counted,
            output_tokens=_output_estimate(spec.estimated_output_tokens, spec.max_output_tokens),
            complexity=spec.complexity,
            deadline=deadline,
            name=spec.name,
            max_output_tokens=spec.max_output_tokens,
            counted_input_tokens=counted,
        )


def _output_estimate(estimated: int | None, maximum: int | None) -> int:
    if estimated is not None:
        return estimated
    return maximum if maximum is not None else DEFAULT_OUTPUT_TOKENS


@dataclass(slots=True)
class Attempt:
    """One try at one provider, as handed to the caller's function.

    ``timeout`` is what the adapter must enforce: the provider's timeout, or less when the
    call's deadline is nearer. ``number`` counts attempts across the call from 1; ``retry``
    counts retries at this provider from 0. A ``probe`` tests a half-open breaker.
    ``max_output_tokens`` is the output limit the attempt must send: the request's own, or
    lower when the budget left cannot pay for more (None: the request's, unchanged).
    """

    provider: ProviderSpec
    number: int
    retry: int
    timeout: float
    probe: bool = False
    max_output_tokens: int | None = None


@dataclass(slots=True)
class AttemptRecord:
    """What happened in one attempt; ``waited`` is the backoff slept just before it."""

    provider: str
    number: int
    retry: int
    latency: float
    waited: float
    probe: bool
    error: ProviderError | None = None

    @property
    def outcome(self) -> str:
        """The outcome as a label for metrics and logs: "ok" or the error kind."""
        return "ok" if self.error is None else self.error.kind.value


class SkipReason(StrEnum):
    """Why a call passed over a provider without (another) attempt there."""

    BREAKER_OPEN = "breaker_open"
    """Its breaker is open."""
    HALF_OPEN_BUSY = "half_open_busy"
    """Its breaker is half-open and every probe slot is taken."""
    BUDGET = "budget"
    """The attempt's estimated cost does not fit in what is left of the budget."""
    PRICE_UNKNOWN = "price_unknown"
    """The agent has a budget and the provider's price is unknown (docs/pricing.md)."""
    DEADLINE = "deadline"
    """Its timeout does not fit in what is left of the deadline, and a later provider's does."""
    CAPABILITY = "capability"
    """It lacks a capability the request needs (tools, vision, JSON schema, streaming)."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """The call left ``from_provider`` for ``to_provider``; ``reason`` is an error kind or skip reason."""

    from_provider: str
    to_provider: str
    reason: str
    detail: str = ""


@dataclass(slots=True)
class CallResult(Generic[R]):
    """A call's answer and how it was obtained.

    ``cost`` is in US dollars from the answer's real usage. When the answer carried no usage
    yet (a stream that has just started), ``settled`` is False and the caller owes the engine
    exactly one ``ProviderManager.record_usage`` or ``record_stream_failure`` when it ends.
    """

    provider: str
    value: R
    attempts: list[AttemptRecord]
    fallbacks: list[Fallback]
    latency: float
    usage: Usage | None
    cost: float
    settled: bool
