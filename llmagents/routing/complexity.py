"""Task size and complexity: token estimates from text, and the tier each complexity prefers.

Estimates are deliberately rough (about four characters a token, plus a few tokens of framing
per message): they only choose a provider and gate the budget, while cost is charged from the
usage the provider reports. A task without a stated complexity gets one from its prompt's size;
``simple`` then prefers the fast tier, ``complex`` the quality tier, and ``medium`` leaves the
strategy's order alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

from llmagents.api.pool import Tier
from llmagents.api.work import Complexity

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Role markers and separators each message costs on top of its text."""

SIMPLE_MAX_INPUT_TOKENS = 256
"""Prompts up to this many estimated tokens are ``simple`` unless the task says otherwise."""
COMPLEX_MIN_INPUT_TOKENS = 2048
"""Prompts from this many estimated tokens on are ``complex`` unless the task says otherwise."""

_TIER_RANKS: dict[Complexity, dict[Tier, int]] = {
    Complexity.SIMPLE: {Tier.FAST: 0, Tier.BALANCED: 1, Tier.QUALITY: 2},
    Complexity.COMPLEX: {Tier.QUALITY: 0, Tier.BALANCED: 1, Tier.FAST: 2},
}


class HasContent(Protocol):
    @property
    def content(self) -> str: ...


def estimate_tokens(text: str) -> int:
    """Rough token count of ``text``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_message_tokens(messages: Iterable[HasContent]) -> int:
    """Rough prompt tokens of a conversation."""
    return sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def complexity_for(input_tokens: int) -> Complexity:
    """The complexity a prompt of ``input_tokens`` gets when none is stated."""
    if input_tokens <= SIMPLE_MAX_INPUT_TOKENS:
        return Complexity.SIMPLE
    if input_tokens >= COMPLEX_MIN_INPUT_TOKENS:
        return Complexity.COMPLEX
    return Complexity.MEDIUM


def tier_ranks(complexity: Complexity) -> dict[Tier, int] | None:
    """Preference of each tier for ``complexity`` (lower first); None keeps the strategy's order."""
    return _TIER_RANKS.get(complexity)
