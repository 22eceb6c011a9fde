"""The OpenAI-compatible adapter reads a whole answer in one pass over its bytes; whatever
that pass refuses goes the two-pass way, so both read every body alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmagents.errors import ProviderError
from llmagents.providers.mapping import decode_json
from llmagents.providers.openai import OpenAIAdapter

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
BODIES: dict[str, bytes] = {
    "plain": json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                         "choices": [{"index": 0, "message": {"role": "assistant",
                                                               "content": "hi"},
                                      "finish_reason": "stop"}], "usage": USAGE}).encode(),
    "tool calls and reasoning": json.dumps({
        "model": "m", "usage": {**USAGE, "completion_tokens_details": {"reasoning_tokens": 3}},
        "choices": [{"message": {"content": None, "reasoning_content": "hmm", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}],
    }).encode(),
    "an error in a 200": json.dumps({"error": {"message": "overloaded", "type": "server_error"},
                                     "choices": []}).encode(),
    "an error beside choices": json.dumps({
        "error": {"message": "late", "code": 500},
        "choices": [{"message": {"content": "x"}}], "usage": USAGE}).encode(),
    "vllm's error object": json.dumps({"object": "error", "message": "bad",
                                       "code": 400}).encode(),
    "no choices": json.dumps({"choices": [], "usage": USAGE}).encode(),
    "no usage": json.dumps({"choices": [{"message": {"content": "x"}}]}).encode(),
    "wrong shape": json.dumps({"choices": [{"message": "x"}], "usage": USAGE}).encode(),
    "not JSON": b"<html>bad gateway</html>",
    "UTF-16": json.dumps({"choices": [{"message": {"content": "x"}}],
                          "usage": USAGE}).encode("utf-16"),
    "a list": b"[1, 2]",
}  # fmt: skip


def _outcome(read: Any) -> Any:
    try:
        return read()
    except ProviderError as error:
        return (type(error), str(error))


@pytest.mark.parametrize("name", sorted(BODIES))
def test_one_pass_reads_every_body_as_two_passes_do(name: str) -> None:
    adapter = OpenAIAdapter(name="p", model="m", base_url="http://127.0.0.1:9/v1", api_key="k")
    body = BODIES[name]
    one = _outcome(lambda: adapter._answer_of(body))
    two = _outcome(lambda: adapter._parse_answer(decode_json(body, provider="p")))
    assert one == two
