"""Server-sent events, as all three provider protocols stream them.

Anthropic names its events (``event: content_block_delta``), OpenAI and Gemini send bare
``data:`` lines, Gemini separates events with CRLF. One small parser covers all of them; it
reads lines, so the HTTP client's line splitting does the byte work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type (``message`` when unnamed) and its joined data lines."""

    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Turn a stream of text lines (without line endings) into events, per the WHATWG rules.

    An event without data is not dispatched; a partial event cut off by the end of the stream
    is dropped, as the specification asks — the caller notices the missing terminal event.
    """
    event = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
