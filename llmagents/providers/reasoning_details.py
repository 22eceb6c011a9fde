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
the pool provider. Items of other types are skipped. No adapter sends them back yet:
OpenRouter's signatures and encrypted data are shown to clients (the Messages front door)
and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def read_details(details: Iterable[Any], *, provider: str) -> tuple[Reasoning, ...]:
    """The reasoning blocks of a whole answer, in order."""
    blocks: list[Reasoning] = []
    for detail in _known(details):
        if detail["type"] == ENCRYPTED:
            data = _string(detail, "data")
            if data is not None:
                blocks.append(Reasoning(redacted=data, provider=provider))
            continue
        text, signature = _text(detail), _string(detail, "signature")
        if text or signature:
            blocks.append(Reasoning(text, signature=signature, provider=provider))
    return tuple(blocks)


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

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def feed(self, details: Iterable[Any]) -> Piece:
        piece = Piece()
        for detail in _known(details):
            if detail["type"] == ENCRYPTED:
                data = _string(detail, "data")
                if data is not None:
                    piece.end = Reasoning(redacted=data, provider=self.provider)
                continue
            piece.text += _text(detail)
            signature = _string(detail, "signature")
            if signature is not None:
                piece.end = Reasoning(signature=signature, provider=self.provider)
        return piece
