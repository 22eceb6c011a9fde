"""Server-sent events, as all three provider protocols stream them.

Anthropic names its events (``event: content_block_delta``), OpenAI and Gemini send bare
``data:`` lines, Gemini separates events with CRLF. One small parser covers all of them:
``iter_lines`` cuts the body's bytes into text lines, ``iter_sse`` groups lines into events.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type (``message`` when unnamed) and its joined data lines."""

    event: str
    data: str


async def iter_lines(chunks: AsyncIterator[bytes]) -> AsyncGenerator[str, None]:
    """UTF-8 text lines without their ``\n`` (a ``\r`` before it is left to ``iter_sse``),
    from byte chunks cut anywhere, even inside a character; a last line without a newline
    is yielded too. No line length limit: an event is as long as the provider makes it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in chunks:
        *lines, pending = (pending + decoder.decode(chunk)).split("\n")
        for line in lines:
            yield line
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


async def iter_sse(lines: AsyncIterator[str]) -> AsyncGenerator[SseEvent, None]:
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
