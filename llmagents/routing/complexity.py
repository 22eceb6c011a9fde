"""Task size and complexity: token estimates from text, and the tier each complexity prefers.

Estimates are deliberately rough (about four characters a token, plus a few tokens of framing
per message): they only choose a provider and gate the budget, while cost is charged from the
usage the provider reports. A task without a stated complexity gets one from its prompt's size;
``simple`` then prefers the fast tier, ``complex`` the quality tier, and ``medium`` leaves the
strategy's order alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from llmagents.api.pool import Tier
from llmagents.api.work import Complexity

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Role markers and separators each message costs on top of its text."""
IMAGE_TOKENS = 800
"""An image in the input, whatever its size: about what a 1024x1024 image costs at OpenAI
(765) and Anthropic (about 1400 at most, less when smaller)."""

SIMPLE_MAX_INPUT_TOKENS = 256
"""Prompts up to this many estimated tokens are ``simple`` unless the task says otherwise."""
COMPLEX_MIN_INPUT_TOKENS = 2048
"""Prompts from this many estimated tokens on are ``complex`` unless the task says otherwise."""

_TIER_RANKS: dict[Complexity, dict[Tier, int]] = {
    Complexity.SIMPLE: {Tier.FAST: 0, Tier.BALANCED: 1, Tier.QUALITY: 2},
    Complexity.COMPLEX: {Tier.QUALITY: 0, Tier.BALANCED: 1, Tier.FAST: 2},
}


class HasContent(Protocol):
    """A message: its content is text, or parts (text parts have ``text``, images ``url``)."""

    @property
    def content(self) -> str | Sequence[object]: ...


def estimate_tokens(text: str) -> int:
    """Rough token count of ``text``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_message_tokens(messages: Iterable[HasContent]) -> int:
    """Rough prompt tokens of a conversation: text parts, images and tool calls included."""
    total = 0
    for message in messages:
        content = message.content
        if isinstance(content, str):
            text, images = content, 0
        else:
            text = "".join(str(getattr(part, "text", "")) for part in content)
            images = sum(1 for part in content if hasattr(part, "url"))
        for call in getattr(message, "tool_calls", ()):
            text += call.name + call.arguments
        total += estimate_tokens(text) + images * IMAGE_TOKENS + MESSAGE_OVERHEAD_TOKENS
    return total


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
