"""More agent libraries nobody here wrote, each running a two-tool agent loop to its final
answer through the gateway while the provider that began the conversation fails in the
middle of it: pydantic-ai (on chat completions, the Responses API and Anthropic's Messages
API, plain, streamed and with structured output) and LangGraph's ReAct agent (on LangChain's
OpenAI and Anthropic chat models, plain and streamed).

The pod has one fake of each protocol (``conftest.Pod``): claude answers first, and its
outage after the first turn moves the rest of the conversation, tool calls and results
included, to gpt (OpenAI-compatible)."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from pydantic_ai import Agent
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from .conftest import Pod

PROMPT = "What do get_weather and get_time say for Paris?"
FINAL = "[fake-openai:gpt-4.1] tool results: Sunny in Paris; Noon in Paris"


def _fail_after_first_turn(pod: Pod) -> None:
    """claude answers the first request (the tool calls) and is down from the second on."""
    pod.claude.core.update({"script": ["ok"] + ["503"] * 20})


def _settled(pod: Pod) -> None:
    spend = pod.runner.engine.manager.spend_by_provider
    assert spend["claude"].calls == 1 and spend["gpt"].calls >= 1
    assert pod.claude.stats.requests >= 2  # the second turn met the outage
    assert all(s.misconfigured is None for s in pod.runner.engine.manager.status().values())


def _pydantic_ai_model(pod: Pod, door: str) -> Model:
    if door == "chat":
        return OpenAIChatModel("auto", provider=OpenAIProvider(base_url=pod.url, api_key="k"))
    if door == "responses":
        return OpenAIResponsesModel("auto", provider=OpenAIProvider(base_url=pod.url, api_key="k"))
    origin = pod.url.removesuffix("/v1")
    return AnthropicModel("auto", provider=AnthropicProvider(base_url=origin, api_key="k"))


def _pydantic_ai_agent(model: Model, called: list[str], **options: Any) -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(model, instructions="Use the tools.", **options)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(f"weather:{city}")
        return f"Sunny in {city}"

    @agent.tool_plain
    def get_time(city: str) -> str:
        """The local time in a city."""
        called.append(f"time:{city}")
        return f"Noon in {city}"

    return agent


@pytest.mark.parametrize("door", ["chat", "responses", "messages"])
@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_a_pydantic_ai_agent_with_two_tools_survives_a_fallback_mid_run(
    pod: Pod, door: str, streamed: bool
) -> None:
    called: list[str] = []
    agent = _pydantic_ai_agent(_pydantic_ai_model(pod, door), called)
    _fail_after_first_turn(pod)
    if streamed:
        async with agent.run_stream(PROMPT) as run:
            output = await run.get_output()
            usage = run.usage
    else:
        result = await agent.run(PROMPT)
        output, usage = result.output, result.usage

    assert sorted(called) == ["time:Paris", "weather:Paris"]
    assert output == FINAL
    assert usage.requests == 2
    _settled(pod)


class Forecast(pydantic.BaseModel):
    city: str
    summary: str


@pytest.mark.parametrize("door", ["chat", "messages"])
async def test_a_pydantic_ai_agent_gets_structured_output_after_a_fallback(
    pod: Pod, door: str
) -> None:
    """pydantic-ai asks for its output type by a tool of its own (``final_result``) beside
    the agent's; the fake fills a forced schema with valid JSON."""
    called: list[str] = []
    agent = _pydantic_ai_agent(_pydantic_ai_model(pod, door), called, output_type=Forecast)
    _fail_after_first_turn(pod)
    result = await agent.run(PROMPT)
    assert isinstance(result.output, Forecast)
    assert sorted(called) == ["time:Paris", "weather:Paris"]
    _settled(pod)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"Noon in {city}"


def _chat_model(pod: Pod, door: str, *, streaming: bool) -> Any:
    if door == "chat":
        return ChatOpenAI(model="auto", base_url=pod.url, api_key="k", max_retries=0,
                          streaming=streaming, stream_usage=True)  # fmt: skip
    return ChatAnthropic(model_name="auto", base_url=pod.url.removesuffix("/v1"), api_key="k",
                         max_retries=0, streaming=streaming, timeout=30, stop=None)  # fmt: skip


# LangGraph 1.x points to langchain's create_agent, built on the same loop.
@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
@pytest.mark.parametrize("door", ["chat", "messages"])
@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
async def test_a_langgraph_react_agent_with_two_tools_survives_a_fallback_mid_run(
    pod: Pod, door: str, streaming: bool
) -> None:
    agent = create_react_agent(_chat_model(pod, door, streaming=streaming),
                               [get_weather, get_time], prompt="Use the tools.")  # fmt: skip
    _fail_after_first_turn(pod)
    state = await agent.ainvoke({"messages": [("user", PROMPT)]})

    messages = state["messages"]
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert sorted((c["name"], c["args"]) for c in calls) == [
        ("get_time", {"city": "Paris"}),
        ("get_weather", {"city": "Paris"}),
    ]
    results = [m.content for m in messages if isinstance(m, ToolMessage)]
    assert sorted(results) == ["Noon in Paris", "Sunny in Paris"]
    final = messages[-1]
    assert isinstance(final, AIMessage) and final.text == FINAL
    assert final.usage_metadata is not None and final.usage_metadata["output_tokens"] > 0
    _settled(pod)
