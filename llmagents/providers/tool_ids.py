"""Tool-call ids across providers that disagree on their form.

A conversation keeps the ids of its tool calls in its history: the assistant message that
called, and the tool message that answered. A client sees the ids of whichever provider
made each call (OpenAI's ``call_...``, Anthropic's ``toolu_...``, ours for Gemini, which
gives none), and sends them back in later requests, which may go to another provider after
a fallback. Each protocol restricts ids: Anthropic to ``[a-zA-Z0-9_-]+``, OpenAI to at most
40 characters. An id that does not fit is replaced, at the adapter's edge, by a
deterministic one derived from it, so that a call and its answer still match and the
client never sees the replacement: providers only read ids of the history, and the ids of
new calls are theirs.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_SAFE = re.compile(r"[a-zA-Z0-9_-]+")  # whole (fullmatch): ``$`` would pass "id\n"


def fit(tool_call_id: str, *, max_length: int = 64) -> str:
    """``tool_call_id`` if it is made of ``[a-zA-Z0-9_-]`` and short enough, else a stable
    stand-in derived from it."""
    if len(tool_call_id) <= max_length and _SAFE.fullmatch(tool_call_id):
        return tool_call_id
    digest = hashlib.sha256(tool_call_id.encode("utf-8", "surrogatepass")).hexdigest()
    return "call_" + digest[: min(32, max_length - 5)]


def new_id() -> str:
    """An id for a tool call whose provider gave it none (Gemini)."""
    return "call_" + secrets.token_hex(12)
