"""Every field the agent libraries' SDKs send is accepted on each front door, whichever
provider answers: passed on to a provider of the same protocol, left out for the others
(docs/gateway.md says which), never a 400 for a field a real SDK sends."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .conftest import Pod

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = {"name": "get_weather", "description": "Weather.", "parameters": SCHEMA}

# What openai-python, LangChain, pydantic-ai and LiteLLM put in a chat completion.
CHAT: dict[str, Any] = {
    "model": "auto",
    "messages": [
        {"role": "developer", "content": "Be brief.", "name": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "get_weather for Paris"}],
         "name": "alice"},
        {"role": "assistant", "content": [{"type": "text", "text": ""}], "name": "bot",
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "Sunny"}],
         "name": "get_weather"},
        {"role": "user", "content": "And in Oslo?"},
    ],
    "tools": [{"type": "function", "function": {**WEATHER, "strict": True}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "stream_options": {"include_usage": True},
    "n": 1, "logprobs": False, "top_logprobs": None, "user": "user-1",
    "metadata": {"run": "42"}, "store": False, "service_tier": "auto",
    "max_completion_tokens": 200, "temperature": 0.2, "top_p": 0.9, "seed": 7,
    "stop": ["\n\n\n"], "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "logit_bias": {"50256": -100}, "reasoning_effort": "low", "verbosity": "low",
    "prompt_cache_key": "agent-a", "safety_identifier": "hash-1", "modalities": ["text"],
    "prediction": None, "extra_body_field_nobody_knows": {"x": [1, 2]},
}  # fmt: skip

# What anthropic-python, langchain-anthropic and pydantic-ai put in a Messages request.
MESSAGES: dict[str, Any] = {
    "model": "auto",
    "max_tokens": 200,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "get_weather for Paris",
                                      "cache_control": {"type": "ephemeral", "ttl": "5m"}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking.", "citations": None},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}, "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False,
             "content": [{"type": "text", "text": "Sunny"}],
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "And in Oslo?"}]},
    ],
    "tools": [{"name": "get_weather", "description": "Weather.", "input_schema": SCHEMA,
               "cache_control": {"type": "ephemeral"}, "type": "custom"}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "user-1"}, "stop_sequences": ["\n\nHuman:"], "temperature": 0.2,
    "top_k": 40, "top_p": 0.9, "service_tier": "auto", "stream": False,
}  # fmt: skip

# What the OpenAI Agents SDK, Codex and pydantic-ai put in a Responses request.
RESPONSES: dict[str, Any] = {
    "model": "auto",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "get_weather for Paris"}],
         "type": "message"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Paris"}', "id": "fc_1", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
        {"role": "user", "content": "And in Oslo?"},
    ],
    "tools": [{"type": "function", **WEATHER, "strict": True}],
    "tool_choice": "auto", "parallel_tool_calls": True, "store": False,
    "include": ["reasoning.encrypted_content"], "metadata": {"run": "42"},
    "truncation": "disabled", "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "text"}, "verbosity": "low"}, "top_logprobs": 0,
    "max_output_tokens": 200, "temperature": 0.2, "top_p": 0.9, "user": "user-1",
    "prompt_cache_key": "agent-a", "safety_identifier": "hash-1", "service_tier": "auto",
    "max_tool_calls": 4, "background": False, "stream": False,
}  # fmt: skip

DOORS = {"/v1/chat/completions": CHAT, "/v1/messages": MESSAGES, "/v1/responses": RESPONSES}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", ["claude", "gpt", "gemini"])
@pytest.mark.parametrize("path", sorted(DOORS))
async def test_every_field_an_sdk_sends_is_served_by_every_provider(
    pod: Pod, path: str, provider: str, stream: bool
) -> None:
    body = {**DOORS[path], "model": provider, "stream": stream}
    origin = pod.url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(origin + path, content=json.dumps(body))
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llmagents-provider"] == provider
    if stream:
        assert answer.text.count("data: ") > 2
        for broken in ('data: {"error"', "event: error", "response.failed"):
            assert broken not in answer.text
    assert all(s.misconfigured is None for s in pod.runner.engine.manager.status().values())


# A tool_choice that demands nothing, beside no tools: an agent without tools whose settings
# name a tool_choice sends this. The real APIs refuse a tool_choice without tools (so do
# the fakes): an adapter must leave it out, not have every provider refuse the call.
NO_TOOLS = {
    "/v1/chat/completions": {"model": "auto", "tool_choice": "auto",
                             "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages": {"model": "auto", "max_tokens": 50, "tool_choice": {"type": "auto"},
                     "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "auto", "input": "hi", "tools": [], "tool_choice": "auto"},
}  # fmt: skip


@pytest.mark.parametrize("provider", ["claude", "gpt", "gemini"])
@pytest.mark.parametrize("path", sorted(NO_TOOLS))
async def test_a_tool_choice_beside_no_tools_is_served_by_every_provider(
    pod: Pod, path: str, provider: str
) -> None:
    body = {**NO_TOOLS[path], "model": provider}
    origin = pod.url.removesuffix("/v1")
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(origin + path, content=json.dumps(body))
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llmagents-provider"] == provider
