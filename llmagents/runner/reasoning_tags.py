"""Signed reasoning as clients hold it: tagged with the pool provider that made it.

A thinking block's ``signature`` (Anthropic's; OpenRouter passes Claude's on) and an
encrypted or redacted block's data verify only at the provider that made them. Every front
door hands them to its client with a prefix naming that provider, ``llmagents~<provider>~``,
and reads the prefix when the client sends them back, so that only that provider gets them
back, unprefixed and unchanged, and a fallback to any other drops them (``docs/gateway.md``):

- ``/v1/messages``: a ``thinking`` block's ``signature``, a ``redacted_thinking`` block's ``data``;
- ``/v1/chat/completions``: OpenRouter's ``reasoning_details`` (``reasoning.text`` with its
  ``signature``, ``reasoning.encrypted`` with its ``data``), in answers and in the history;
- ``/v1/responses``: a ``reasoning`` item's ``encrypted_content``, where a redacted block's
  data also bears ``redacted:`` (the item has no block type to tell it apart).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmagents.chat import Reasoning

_TAG = "llmagents~"
_REDACTED = "redacted:"

TEXT_DETAIL = "reasoning.text"
ENCRYPTED_DETAIL = "reasoning.encrypted"


def tag(provider: str | None, value: str) -> str:
    """A signature (or redacted data) as the client sees it: prefixed by its provider."""
    return f"{_TAG}{provider}~{value}" if provider else value


def untag(value: str) -> tuple[str | None, str]:
    """The provider and the value as that provider made it; ``None`` when it bears no
    prefix (a client's own history, from a provider's API directly)."""
    if not value.startswith(_TAG):
        return None, value
    provider, _, original = value[len(_TAG) :].partition("~")
    return provider or None, original


def encrypted_content(reasoning: Reasoning) -> str | None:
    """A Responses ``reasoning`` item's ``encrypted_content`` for a signed or redacted block
    (``None`` for one that carries neither: nothing to send back)."""
    if reasoning.redacted is not None:
        return tag(reasoning.provider, _REDACTED + reasoning.redacted)
    if reasoning.signature:
        return tag(reasoning.provider, reasoning.signature)
    return None


def from_encrypted_content(text: str, content: str) -> Reasoning | None:
    """The block a Responses item sent back stands for; ``None`` for one the gateway did not
    hand out (OpenAI's own encrypted reasoning, which no provider here reads)."""
    provider, value = untag(content)
    if provider is None:
        return None
    if value.startswith(_REDACTED):
        return Reasoning(redacted=value[len(_REDACTED) :], provider=provider)
    return Reasoning(text, signature=value, provider=provider)


def details(reasoning: Iterable[Reasoning]) -> list[dict[str, Any]]:
    """Reasoning as OpenRouter's ``reasoning_details``, one block per ``index``, signatures
    and encrypted data tagged (``/v1/chat/completions`` answers)."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(reasoning):
        if item.redacted is not None:
            out.append({"type": ENCRYPTED_DETAIL, "data": tag(item.provider, item.redacted),
                        "index": index})  # fmt: skip
            continue
        detail: dict[str, Any] = {"type": TEXT_DETAIL, "text": item.text, "index": index}
        if item.signature:
            detail["signature"] = tag(item.provider, item.signature)
        out.append(detail)
    return out


def from_details(sent: Any) -> tuple[Reasoning, ...]:
    """The signed and encrypted blocks of a history's ``reasoning_details`` that the gateway
    handed out (others verify nowhere here: left out). Pieces of one block (same ``type``
    and ``index``, as a client that kept a stream's deltas sends them) are joined."""
    if not isinstance(sent, list):
        return ()
    blocks: list[dict[str, Any]] = []
    for detail in sent:
        if not isinstance(detail, dict) or detail.get("type") not in (
            TEXT_DETAIL,
            ENCRYPTED_DETAIL,
        ):
            continue  # fmt: skip
        last = blocks[-1] if blocks else None
        index = detail.get("index")
        if last is not None and index is not None and (last.get("type"), last.get("index")) == (
            detail["type"], index
        ):  # fmt: skip
            last["text"] = _string(last, "text") + _string(detail, "text")
            for key in ("signature", "data"):
                if _string(detail, key):
                    last[key] = detail[key]
        else:
            blocks.append(dict(detail))
    out: list[Reasoning] = []
    for block in blocks:
        if block["type"] == ENCRYPTED_DETAIL:
            provider, data = untag(_string(block, "data"))
            if provider is not None and data:
                out.append(Reasoning(redacted=data, provider=provider))
            continue
        provider, signature = untag(_string(block, "signature"))
        if provider is not None and signature:
            out.append(Reasoning(_string(block, "text"), signature=signature, provider=provider))
    return tuple(out)


def _string(detail: dict[str, Any], key: str) -> str:
    value = detail.get(key)
    return value if isinstance(value, str) else ""
