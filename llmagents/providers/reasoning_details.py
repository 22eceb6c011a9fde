"""OpenRouter's ``reasoning_details``: the blocks of a model's reasoning, read into the chat
model's ``Reasoning``.

OpenRouter answers (message and stream delta alike) carry ``reasoning``, the visible text,
and ``reasoning_details``, the same reasoning as typed blocks, each with the ``index`` of
the block it belongs to and the ``format`` of the model that made it:

- ``reasoning.text``: ``text``, and the ``signature`` Anthropic models attach (streamed as a
  last piece of the block);
- ``reasoning.summary``: ``summary``, what OpenAI's reasoning models show;
- ``reasoning.encrypted``: opaque ``data`` (OpenAI's encrypted reasoning, Anthropic's
  redacted thinking).

When details are present they are read instead of ``reasoning``, which repeats their text:
the blocks stay apart, signatures and encrypted blocks are kept, each ``Reasoning`` names
the pool provider. Items of other types are skipped.

OpenRouter wants them back in the next turn's assistant message, as it sent them
(``write_details``): a Claude model's signed thinking must come before its tool calls when
it thinks. The chat model keeps neither a block's ``format`` nor its ``id`` (Gemini's
encrypted blocks carry the id of the tool call they sign), so the adapter remembers them for
each signature and encrypted block it read (``Provenance``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from llmagents.chat import Reasoning

TEXT = "reasoning.text"
SUMMARY = "reasoning.summary"
ENCRYPTED = "reasoning.encrypted"


def _text(detail: dict[str, Any]) -> str:
    value = detail.get("summary") if detail.get("type") == SUMMARY else detail.get("text")
    return value if isinstance(value, str) else ""


def _string(detail: dict[str, Any], key: str) -> str | None:
    value = detail.get(key)
    return value if isinstance(value, str) and value else None


def _known(details: Iterable[Any]) -> list[dict[str, Any]]:
    return [d for d in details if isinstance(d, dict) and d.get("type") in (TEXT, SUMMARY,
                                                                              ENCRYPTED)]  # fmt: skip


MAX_REMEMBERED = 4096
"""Blocks whose provenance an adapter remembers (the latest signatures and data)."""
_PROVENANCE = ("format", "id")

Remember = Callable[[str, dict[str, Any]], None]


class Provenance:
    """The ``format`` and ``id`` each signed or encrypted block an adapter read came with, by
    its signature or data; the oldest are forgotten first (a forgotten one goes back without
    them)."""

    def __init__(self) -> None:
        self._known: OrderedDict[str, dict[str, str]] = OrderedDict()

    def remember(self, value: str, detail: dict[str, Any]) -> None:
        kept = {k: v for k in _PROVENANCE if (v := _string(detail, k)) is not None}
        if not kept:
            return
        self._known[value] = kept
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)

    def get(self, value: str) -> dict[str, str]:
        return self._known.get(value, {})


def _nothing(value: str, detail: dict[str, Any]) -> None:
    return None


def read_details(
    details: Iterable[Any], *, provider: str, remember: Remember = _nothing
) -> tuple[Reasoning, ...]:
    """The reasoning blocks of a whole answer, in order; ``remember`` hears each signature or
    encrypted data with its detail."""
    blocks: list[Reasoning] = []
    for detail in _known(details):
        if detail["type"] == ENCRYPTED:
            data = _string(detail, "data")
            if data is not None:
                remember(data, detail)
                blocks.append(Reasoning(redacted=data, provider=provider))
            continue
        text, signature = _text(detail), _string(detail, "signature")
        if signature is not None:
            remember(signature, detail)
        if text or signature:
            blocks.append(Reasoning(text, signature=signature, provider=provider))
    return tuple(blocks)


def write_details(
    reasoning: Iterable[Reasoning], *, provider: str, provenance: Provenance
) -> list[dict[str, Any]]:
    """An assistant turn's reasoning as the ``reasoning_details`` OpenRouter takes back: its
    own signed and encrypted blocks only (a signature verifies only where it was made; an
    unsigned summary needs no return), each with the format and id it came with."""
    out: list[dict[str, Any]] = []
    for item in reasoning:
        if item.provider != provider:
            continue
        if item.redacted is not None:
            detail: dict[str, Any] = {"type": ENCRYPTED, "data": item.redacted}
            value = item.redacted
        elif item.signature:
            detail = {"type": TEXT, "text": item.text, "signature": item.signature}
            value = item.signature
        else:
            continue
        detail.update(provenance.get(value))
        detail["index"] = len(out)
        out.append(detail)
    return out


@dataclass(slots=True)
class Piece:
    """What one delta's details add: reasoning text, then possibly the end of its block."""

    text: str = ""
    end: Reasoning | None = None


class DetailsStream:
    """Reads the ``reasoning_details`` of a stream's deltas in order.

    A block ends with its signature or, for an encrypted block, whole; a block that ends
    without either (a summary; Anthropic's text before its signature comes) simply runs
    on until the answer's text begins, as ``reasoning_content`` does.
    """

    def __init__(self, provider: str, remember: Remember = _nothing) -> None:
        self.provider = provider
        self._remember = remember
        self._blocks: dict[int | None, dict[str, str]] = {}
        """Each block's format and id, by its ``index``: a signature's piece may not repeat
        them."""

    def feed(self, details: Iterable[Any]) -> Piece:
        piece = Piece()
        for detail in _known(details):
            index = detail.get("index")
            known = self._blocks.setdefault(index if isinstance(index, int) else None, {})
            known |= {k: v for k in _PROVENANCE if (v := _string(detail, k)) is not None}
            if detail["type"] == ENCRYPTED:
                data = _string(detail, "data")
                if data is not None:
                    self._remember(data, known)
                    piece.end = Reasoning(redacted=data, provider=self.provider)
                continue
            piece.text += _text(detail)
            signature = _string(detail, "signature")
            if signature is not None:
                self._remember(signature, known)
                piece.end = Reasoning(signature=signature, provider=self.provider)
        return piece
