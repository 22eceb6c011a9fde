"""CPU the gateway's front doors spend translating one call, per protocol.

Each front door reads its protocol's request into the neutral ``ChatRequest`` and writes the
neutral answer back in its protocol's shape; this measures exactly that work, without a
server or a provider: for a tool-calling turn (two function tools, a history with a user
message, an assistant turn with two parallel calls and their two results), ``request`` is
parsing and validating the body plus translating it, ``answer`` is writing a whole answer
with text and a tool call, ``stream`` is encoding a streamed answer of 40 text pieces and a
tool call in 4 argument pieces. The OpenAI chat front door is the baseline. The target
(issue 12): translation at most 0.2 ms a call at the median, request and answer together.

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

from results import Row, print_table

from llmagents.chat import ChatResponse, StreamChunk, ToolCall, ToolCallDelta, Usage
from llmagents.runner import (
    messages_stream,
    messages_translate,
    openai_chat,
    responses_answer,
    responses_translate,
)
from llmagents.runner.responses_stream import ResponsesStream

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


def _chat_request() -> object:
    return openai_chat.to_chat(openai_chat.parse(CHAT_RAW))


def _chat_answer() -> object:
    return openai_chat.completion(ANSWER, cid="chatcmpl-1")


def _chat_stream() -> object:
    writer = openai_chat.ChunkWriter("chatcmpl-1", "gpt-4.1", with_usage=True)
    out = writer.start()
    for chunk in CHUNKS:
        out += writer.chunk(chunk)
    return out + writer.end("tool_calls", ANSWER.usage)


def _responses_request() -> object:
    return responses_translate.parse_responses(RESPONSES_RAW)


def _responses_answer() -> object:
    body = responses_answer.response_object(
        RESPONSES_WIRE, text=ANSWER.text, tool_calls=ANSWER.tool_calls, usage=ANSWER.usage,
        finish_reason=ANSWER.finish_reason, model=ANSWER.model,
    )  # fmt: skip
    return json.dumps(body.document())


def _responses_stream() -> object:
    writer = ResponsesStream(RESPONSES_WIRE, "gpt-4.1")
    out = writer.start()
    for chunk in CHUNKS:
        out += writer.chunk(chunk)
    return out + writer.end("tool_calls", ANSWER.usage)


def _messages_request() -> object:
    return messages_translate.parse_messages(MESSAGES_RAW)


def _messages_answer() -> object:
    return messages_translate.message_object(
        ANSWER.text, ANSWER.tool_calls, usage=ANSWER.usage, finish_reason=ANSWER.finish_reason,
        model=ANSWER.model,
    ).model_dump_json()  # fmt: skip


def _messages_stream() -> object:
    writer = messages_stream.MessagesStream("gpt-4.1")
    out = writer.start()
    for chunk in CHUNKS:
        out += writer.chunk(chunk)
    return out + writer.end("tool_calls", ANSWER.usage)


CHAT_RAW = json.dumps(CHAT).encode()
RESPONSES_RAW = json.dumps(RESPONSES).encode()
MESSAGES_RAW = json.dumps(MESSAGES).encode()
RESPONSES_WIRE = responses_translate.parse_responses(RESPONSES_RAW).wire

CASES: dict[str, Callable[[], object]] = {
    "chat completions: request": _chat_request,
    "chat completions: answer": _chat_answer,
    "chat completions: stream of 44 chunks": _chat_stream,
    "responses: request": _responses_request,
    "responses: answer": _responses_answer,
    "responses: stream of 44 chunks": _responses_stream,
    "messages: request": _messages_request,
    "messages: answer": _messages_answer,
    "messages: stream of 44 chunks": _messages_stream,
}


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
                        TARGET_US if not case.endswith("chunks") else None))  # fmt: skip
    missed = print_table(rows, decimals=1)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
