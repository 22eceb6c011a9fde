"""CPU the gateway's front doors spend translating one call, per protocol.

Each front door reads its protocol's request into the neutral ``ChatRequest`` and writes the
neutral answer back in its protocol's shape; this measures exactly that work, without a
server or a provider: for a tool-calling turn (two function tools, a history with a user
message, an assistant turn with two parallel calls and their two results), ``request`` is
parsing and validating the body plus translating it, ``answer`` is writing a whole answer
with text and a tool call, ``stream`` is encoding a streamed answer of 40 text pieces and a
tool call in 4 argument pieces. The OpenAI chat front door is the baseline. Each case again
``with reasoning``: the request asks for an effort and sends an earlier turn's signed
reasoning back (``reasoning_details``, a reasoning item's ``encrypted_content``, a thinking
block), the answer starts with a signed block of reasoning, and the stream with 10 pieces of
it and its signature. The target (issue 12): translation at most 0.2 ms a call at the
median, request and answer together.

Run: ``.venv/bin/python bench/front_doors.py [--calls 2000] [--rounds 5]``; each case is
timed call by call, cases take turns in rounds, and the table gives the median over all
calls, the best round's median, p90 and p99.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

from results import Row, print_table

from llmagents.chat import ChatResponse, Reasoning, StreamChunk, ToolCall, ToolCallDelta, Usage
from llmagents.runner import (
    messages_stream,
    messages_translate,
    openai_chat,
    responses_answer,
    responses_translate,
)
from llmagents.runner.responses_stream import ResponsesStream
from llmagents.wire.responses import ResponsesRequest

TARGET_US = 200.0
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

CHAT = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_time", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Noon"},
    ],
    "tools": [{"type": "function", "function": {"name": n, "parameters": SCHEMA}}
              for n in ("get_weather", "get_time")],
}  # fmt: skip
RESPONSES = {
    "model": "auto",
    "instructions": "Use the tools.",
    "input": [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_time",
         "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": "Noon"},
    ],
    "tools": [{"type": "function", "name": n, "parameters": SCHEMA}
              for n in ("get_weather", "get_time")],
}  # fmt: skip
MESSAGES = {
    "model": "auto",
    "max_tokens": 500,
    "system": "Use the tools.",
    "messages": [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Noon"}]},
    ],
    "tools": [{"name": n, "input_schema": SCHEMA} for n in ("get_weather", "get_time")],
}  # fmt: skip

ANSWER = ChatResponse("It is sunny and noon in Paris.", Usage(120, 30), "gpt-4.1", "tool_calls",
                      tool_calls=(ToolCall("call_3", "get_weather", '{"city":"Oslo"}'),))  # fmt: skip
CHUNKS = [StreamChunk(text=f"word{i} ") for i in range(40)] + [
    StreamChunk(tool_calls=(ToolCallDelta(0, id="call_3", name="get_weather"),)),
    *[StreamChunk(tool_calls=(ToolCallDelta(0, arguments=p),)) for p in ('{"ci', 'ty":', '"Os', 'lo"}')],
]  # fmt: skip

THOUGHT = "The user wants the weather and the time in Paris: call both tools."
SIGNATURE = "RXVGYWtlU2lnbmF0dXJlT2ZBbnRocm9waWMwMTIzNDU2Nzg5"
TAGGED = f"llmagents~claude~{SIGNATURE}"
CHAT_REASONING = json.loads(json.dumps(CHAT)) | {"reasoning_effort": "medium"}
CHAT_REASONING["messages"][2]["reasoning_details"] = [
    {"type": "reasoning.text", "text": THOUGHT, "signature": TAGGED, "index": 0}]  # fmt: skip
RESPONSES_REASONING = json.loads(json.dumps(RESPONSES)) | {
    "reasoning": {"effort": "medium", "summary": "auto"},
    "include": ["reasoning.encrypted_content"],
}  # fmt: skip
RESPONSES_REASONING["input"].insert(1, {
    "type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": THOUGHT}],
    "encrypted_content": TAGGED})  # fmt: skip
MESSAGES_REASONING = json.loads(json.dumps(MESSAGES)) | {
    "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2048}}  # fmt: skip
MESSAGES_REASONING["messages"][1]["content"].insert(0, {
    "type": "thinking", "thinking": THOUGHT, "signature": TAGGED})  # fmt: skip
SIGNED = Reasoning(THOUGHT, signature=SIGNATURE, provider="claude")
ANSWER_REASONING = ChatResponse(ANSWER.text, ANSWER.usage, ANSWER.model, ANSWER.finish_reason,
                                tool_calls=ANSWER.tool_calls, reasoning=(SIGNED,))  # fmt: skip
CHUNKS_REASONING = [StreamChunk(reasoning=f"thought{i} ") for i in range(10)] + [
    StreamChunk(reasoning_end=Reasoning(signature=SIGNATURE, provider="claude")), *CHUNKS,
]  # fmt: skip


def _chat_request(raw: bytes) -> object:
    return openai_chat.to_chat(openai_chat.parse(raw))


def _chat_answer(answer: ChatResponse) -> object:
    return openai_chat.completion(answer, cid="chatcmpl-1")


def _responses_answer(wire: ResponsesRequest, answer: ChatResponse) -> object:
    body = responses_answer.response_object(
        wire, text=answer.text, tool_calls=answer.tool_calls, usage=answer.usage,
        finish_reason=answer.finish_reason, model=answer.model, reasoning=answer.reasoning,
    )  # fmt: skip
    return json.dumps(body.document())


def _messages_answer(answer: ChatResponse) -> object:
    return messages_translate.message_object(
        answer.text, answer.tool_calls, usage=answer.usage, finish_reason=answer.finish_reason,
        model=answer.model, reasoning=answer.reasoning,
    ).model_dump_json()  # fmt: skip


class _Writer(Protocol):
    def start(self) -> bytes: ...
    def chunk(self, chunk: StreamChunk) -> bytes: ...
    def end(self, finish_reason: str | None, usage: Usage | None) -> bytes: ...


def _streamed(writer: _Writer, chunks: list[StreamChunk]) -> object:
    out = writer.start()
    for chunk in chunks:
        out += writer.chunk(chunk)
    return out + writer.end("tool_calls", ANSWER.usage)


CHAT_RAW = json.dumps(CHAT).encode()
RESPONSES_RAW = json.dumps(RESPONSES).encode()
MESSAGES_RAW = json.dumps(MESSAGES).encode()
RESPONSES_WIRE = responses_translate.parse_responses(RESPONSES_RAW).wire
CHAT_REASONING_RAW = json.dumps(CHAT_REASONING).encode()
RESPONSES_REASONING_RAW = json.dumps(RESPONSES_REASONING).encode()
MESSAGES_REASONING_RAW = json.dumps(MESSAGES_REASONING).encode()
RESPONSES_REASONING_WIRE = responses_translate.parse_responses(RESPONSES_REASONING_RAW).wire
for _request in (
    openai_chat.to_chat(openai_chat.parse(CHAT_REASONING_RAW)),
    responses_translate.parse_responses(RESPONSES_REASONING_RAW).request,
    messages_translate.parse_messages(MESSAGES_REASONING_RAW).request,
):  # what is timed carries the reasoning back
    assert [m.reasoning for m in _request.messages if m.reasoning] == [(SIGNED,)], _request


def _cases() -> dict[str, Callable[[], object]]:
    """Each front door's request, answer and stream, without and with reasoning."""
    cases: dict[str, Callable[[], object]] = {}
    variants = (
        ("", CHAT_RAW, RESPONSES_RAW, MESSAGES_RAW, RESPONSES_WIRE, ANSWER, CHUNKS),
        (", reasoning", CHAT_REASONING_RAW, RESPONSES_REASONING_RAW, MESSAGES_REASONING_RAW,
         RESPONSES_REASONING_WIRE, ANSWER_REASONING, CHUNKS_REASONING),
    )  # fmt: skip
    for suffix, chat, responses, messages, wire, answer, chunks in variants:
        stream = f"stream of {len(chunks)} chunks{suffix}"
        cases |= {
            f"chat completions: request{suffix}": partial(_chat_request, chat),
            f"chat completions: answer{suffix}": partial(_chat_answer, answer),
            f"chat completions: {stream}": lambda chunks=chunks: _streamed(
                openai_chat.ChunkWriter("chatcmpl-1", "gpt-4.1", with_usage=True), chunks),
            f"responses: request{suffix}": partial(responses_translate.parse_responses, responses),
            f"responses: answer{suffix}": partial(_responses_answer, wire, answer),
            f"responses: {stream}": lambda wire=wire, chunks=chunks: _streamed(
                ResponsesStream(wire, "gpt-4.1"), chunks),
            f"messages: request{suffix}": partial(messages_translate.parse_messages, messages),
            f"messages: answer{suffix}": partial(_messages_answer, answer),
            f"messages: {stream}": lambda chunks=chunks: _streamed(
                messages_stream.MessagesStream("gpt-4.1"), chunks),
        }  # fmt: skip
    return cases


CASES = _cases()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per case and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[list[float]]] = {case: [] for case in CASES}
    for function in CASES.values():  # warm up: imports, pydantic's first validations
        for _ in range(200):
            function()
    gc.collect()
    for _ in range(args.rounds):
        for case, function in CASES.items():
            timings = []
            for _ in range(args.calls):
                began = time.perf_counter_ns()
                function()
                timings.append((time.perf_counter_ns() - began) / 1000)
            samples[case].append(timings)
    rows = []
    for case, rounds in samples.items():
        every = sorted(t for timings in rounds for t in timings)
        quantiles = statistics.quantiles(every, n=100)
        rows.append(Row("front-doors", case, len(every), statistics.median(every),
                        min(statistics.median(r) for r in rounds), quantiles[89], quantiles[98],
                        None if "chunks" in case else TARGET_US))  # fmt: skip
    missed = print_table(rows, decimals=1)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
