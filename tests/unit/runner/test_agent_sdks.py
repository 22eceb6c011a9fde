"""Agent frameworks nobody here wrote, run against the gateway's front doors with a fallback
forced mid-conversation: the OpenAI Agents SDK on its default Responses model, and
Anthropic's SDK on ``/v1/messages`` with tools, plain and streamed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import agents
import anthropic
import pydantic
import pytest

from llmagents.api.runner_config import RunnerConfig
from llmagents.runner.lifecycle import Runner
from llmagents.testing.fake_providers import FakeAnthropic, FakeGemini

from .conftest import Edges, Fakes, openai_client, serving

PROMPT = "What do get_weather and get_time say for Paris?"


def _tools(called: list[str]) -> list[agents.FunctionTool]:
    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(f"weather:{city}")
        return f"Sunny in {city}"

    @agents.function_tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        called.append(f"time:{city}")
        return f"Noon in {city}"

    return [get_weather, get_time]


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
async def test_an_openai_agents_sdk_agent_with_two_tools_survives_a_fallback_mid_run(
    served: tuple[Runner, str], fakes: Fakes, streamed: bool
) -> None:
    runner, url = served
    client = openai_client(url)
    model = agents.OpenAIResponsesModel(model="auto", openai_client=client)
    called: list[str] = []
    agent = agents.Agent(
        name="assistant", instructions="Answer with the tools.", tools=_tools(called), model=model
    )
    config_ = agents.RunConfig(tracing_disabled=True)

    class Down(agents.RunHooks):  # type: ignore[type-arg]
        """The primary answers the first turn (the tool calls), then is down for the rest."""

        async def on_llm_end(self, context, agent, response) -> None:  # type: ignore[no-untyped-def]
            fakes.primary.core.update({"outage": True})

    if streamed:
        result = agents.Runner.run_streamed(agent, PROMPT, run_config=config_, hooks=Down())
        kinds = {event.type async for event in result.stream_events()}
        assert "raw_response_event" in kinds
    else:
        result = await agents.Runner.run(agent, PROMPT, run_config=config_, hooks=Down())

    assert sorted(called) == ["time:Paris", "weather:Paris"]
    assert result.final_output == (
        "[fake-openai:gpt-4.1] tool results: Sunny in Paris; Noon in Paris"
    )
    spend = runner.engine.manager.spend_by_provider
    assert spend["primary"].calls == 1 and spend["fallback"].calls == 1
    assert fakes.primary.stats.requests == 2  # the second turn met the outage
    assert result.context_wrapper.usage.requests == 2
    assert result.context_wrapper.usage.output_tokens == (
        spend["primary"].output_tokens + spend["fallback"].output_tokens
    )


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {**WEATHER, "name": "get_time", "description": "The local time in a city."}


async def _turn(
    client: anthropic.AsyncAnthropic, messages: list, *, stream: bool
) -> anthropic.types.Message:
    if not stream:
        return await client.messages.create(
            model="auto",
            max_tokens=500,
            system="Use tools.",
            tools=[WEATHER, TIME],
            messages=messages,
        )
    async with client.messages.stream(
        model="auto", max_tokens=500, system="Use tools.", tools=[WEATHER, TIME], messages=messages
    ) as events:
        deltas = {e.delta.type async for e in events if e.type == "content_block_delta"}
        assert deltas in ({"text_delta"}, {"input_json_delta"})
        return await events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_an_anthropic_sdk_tool_loop_survives_a_fallback_mid_conversation(
    served: tuple[Runner, str], fakes: Fakes, stream: bool
) -> None:
    runner, url = served
    client = anthropic.AsyncAnthropic(base_url=url, api_key="llmagents-gateway", max_retries=0)
    messages: list = [{"role": "user", "content": PROMPT}]

    first = await _turn(client, messages, stream=stream)
    assert first.stop_reason == "tool_use"
    uses = [block for block in first.content if block.type == "tool_use"]
    assert sorted((u.name, u.input["city"]) for u in uses) == [
        ("get_time", "Paris"),
        ("get_weather", "Paris"),
    ]
    assert runner.engine.manager.current_provider == "primary"

    fakes.primary.core.update({"outage": True})
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": u.id,
                    "content": f"{'Sunny' if u.name == 'get_weather' else 'Noon'} in Paris",
                }
                for u in uses
            ],
        },
    ]
    final = await _turn(client, messages, stream=stream)

    assert final.stop_reason == "end_turn"
    assert final.content[0].text == (
        "[fake-openai:gpt-4.1] tool results: Sunny in Paris; Noon in Paris"
    )
    assert runner.engine.manager.current_provider == "fallback"
    spend = runner.engine.manager.spend_by_provider
    assert final.usage.output_tokens == spend["fallback"].output_tokens


@pytest.fixture
async def across(edges: Edges) -> AsyncIterator[tuple[Runner, str, FakeAnthropic, FakeGemini]]:
    """A gateway whose primary speaks Anthropic's protocol and whose fallback Gemini's."""
    async with (
        FakeAnthropic(api_key="claude-key") as claude,
        FakeGemini(api_key="gemini-key") as gemini,
    ):
        providers = [
            {
                "name": "claude",
                "type": "anthropic",
                "model": "claude-sonnet-4-5",
                "priority": 1,
                "baseURL": claude.base_url,
                "secretRef": {"name": "keys"},
                "timeout": "5s",
                "maxRetries": 0,
                "pricing": {"inputPerMillion": 3, "outputPerMillion": 15},
            },
            {
                "name": "gemini",
                "type": "gemini",
                "model": "gemini-2.5-flash",
                "priority": 2,
                "baseURL": gemini.base_url,
                "secretRef": {"name": "keys"},
                "timeout": "5s",
                "maxRetries": 0,
                "pricing": {"inputPerMillion": 1, "outputPerMillion": 2},
            },
        ]
        cfg = RunnerConfig.model_validate(
            {
                "agent": {"name": "agent-a", "namespace": "ns", "uid": "uid-1"},
                "poolName": "pool",
                "pool": {"providers": providers, "retry": {"initialDelay": "10ms", "jitter": 0}},
                "mode": "gateway",
                "checkpointInterval": "30s",
                "checkpointConfigMap": "agent-a-checkpoint",
                "apiKeyEnv": {"claude": "KEY_CLAUDE", "gemini": "KEY_GEMINI"},
            }
        )
        runner = edges.runner(cfg, api_keys={"claude": "claude-key", "gemini": "gemini-key"})
        async with serving(runner) as origin:
            yield runner, origin, claude, gemini


async def test_an_agents_sdk_run_begun_on_anthropic_finishes_on_gemini_with_its_call_ids(
    across: tuple[Runner, str, FakeAnthropic, FakeGemini],
) -> None:
    runner, url, claude, gemini = across
    client = openai_client(url)
    called: list[str] = []
    agent = agents.Agent(
        name="assistant",
        instructions="Answer with the tools.",
        tools=_tools(called),
        model=agents.OpenAIResponsesModel(model="auto", openai_client=client),
    )

    ids: list[list[str]] = []

    class Down(agents.RunHooks):  # type: ignore[type-arg]
        async def on_llm_end(self, context, agent, response) -> None:  # type: ignore[no-untyped-def]
            ids.append([i.call_id for i in response.output if i.type == "function_call"])
            claude.core.update({"outage": True})

    result = await agents.Runner.run(
        agent, PROMPT, hooks=Down(), run_config=agents.RunConfig(tracing_disabled=True)
    )
    assert sorted(called) == ["time:Paris", "weather:Paris"]
    # Claude's calls reach the client under Anthropic's ids; Gemini, which has no ids, gets
    # the history with them and answers the results (its protocol wraps each in "result").
    assert len(ids) == 2 and len(ids[0]) == 2 and ids[1] == []
    assert all(i.startswith("toolu_fake") for i in ids[0])
    assert result.final_output == (
        '[fake-gemini:gemini-2.5-flash] tool results: {"result": "Sunny in Paris"}; '
        '{"result": "Noon in Paris"}'
    )
    assert gemini.stats.requests == 1
    assert runner.engine.manager.spend_by_provider["gemini"].calls == 1


async def test_an_anthropic_sdk_loop_begun_on_gemini_finishes_on_claude_with_its_call_ids(
    across: tuple[Runner, str, FakeAnthropic, FakeGemini],
) -> None:
    runner, url, claude, gemini = across
    client = anthropic.AsyncAnthropic(base_url=url, api_key="llmagents-gateway", max_retries=0)
    claude.core.update({"outage": True})
    messages: list = [{"role": "user", "content": PROMPT}]
    first = await _turn(client, messages, stream=True)
    uses = [block for block in first.content if block.type == "tool_use"]
    # Gemini's calls carry no ids: the gateway's stand-ins fit Anthropic's id pattern.
    assert len(uses) == 2 and all(re.fullmatch(r"[a-zA-Z0-9_-]+", u.id) for u in uses)
    assert len({u.id for u in uses}) == 2

    claude.core.update({"outage": False})
    gemini.core.update({"outage": True})
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": u.id, "content": f"{u.name} done"}
                for u in uses
            ],
        },
    ]
    final = await _turn(client, messages, stream=False)
    assert final.content[0].text.startswith("[fake-anthropic:claude-sonnet-4-5] tool results:")
    assert "get_weather done" in final.content[0].text and "get_time done" in final.content[0].text
    assert runner.engine.manager.current_provider == "claude"


class Forecast(pydantic.BaseModel):
    city: str
    days: int
    sunny: bool


async def test_an_agents_sdk_agent_with_an_output_type_gets_its_structured_answer(
    served: tuple[Runner, str], fakes: Fakes
) -> None:
    runner, url = served
    fakes.primary.core.update({"outage": True})
    client = openai_client(url)
    agent = agents.Agent(
        name="forecaster",
        instructions="Answer with the forecast.",
        output_type=Forecast,
        model=agents.OpenAIResponsesModel(model="auto", openai_client=client),
    )
    result = await agents.Runner.run(
        agent, "The forecast for Lisbon, please", run_config=agents.RunConfig(tracing_disabled=True)
    )
    # text.format json_schema crossed the gateway: the fallback answered JSON of the schema,
    # which the SDK parsed into the model.
    assert isinstance(result.final_output, Forecast)
    assert result.final_output.city == "Lisbon"
    assert runner.engine.manager.spend_by_provider["fallback"].calls == 1
