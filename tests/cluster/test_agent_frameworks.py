"""A gateway-mode agent whose container runs agent frameworks nobody here wrote, on the real
control plane: the OpenAI Agents SDK (its default Responses model) and Anthropic's SDK, each
running a tool loop to its final answer through the runner's gateway while the primary
provider goes down mid-run, then reporting its work done (``POST /v1/agent/complete``) and
exiting: the operator completes the agent and scales it to zero, nothing is paid twice, and
``kubectl get llmagents`` shows what the run cost.

The container is a Python process run by the process kubelet with the environment the
operator gives it (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``); the providers are the fake
OpenAI servers of ``test_runner_e2e``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from test_operator import OperatorProcess
from test_runner_e2e import (  # noqa: F401 (fixtures)
    Fakes,
    agent_answer,
    apply_agent,
    completed,
    crds,
    fakes,
    operator,
    setup,
    spent,
    status,
    table_row,
)

from llmagents.api.status import format_usd
from tooling.cluster import Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

AGENT_LOOP = textwrap.dedent(
    """
    import asyncio, json, os, time
    import agents, anthropic, httpx, openai

    PROMPT = "What do get_weather and get_time say for Paris?"

    @agents.function_tool
    def get_weather(city: str) -> str:
        \"\"\"The weather in a city.\"\"\"
        return f"Sunny in {city}"

    @agents.function_tool
    def get_time(city: str) -> str:
        \"\"\"The local time in a city.\"\"\"
        return f"Noon in {city}"

    def wait_for_gateway() -> None:
        client = openai.OpenAI(max_retries=0, timeout=30)
        for _ in range(120):
            try:
                client.models.list()
                return
            except openai.APIConnectionError:
                time.sleep(0.5)

    async def openai_agent() -> str:
        # The SDK's own client reads OPENAI_BASE_URL; its traces would go to OpenAI.
        agents.set_tracing_disabled(True)
        agent = agents.Agent(name="assistant", instructions="Answer with the tools.",
                             tools=[get_weather, get_time], model="auto")
        result = await agents.Runner.run(agent, PROMPT)
        return result.final_output

    def anthropic_agent() -> str:
        client = anthropic.Anthropic(max_retries=0)  # reads ANTHROPIC_BASE_URL
        tool = {"name": "get_weather", "description": "The weather in a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
        messages = [{"role": "user", "content": "What does get_weather say for Oslo?"}]
        while True:
            with client.messages.stream(model="auto", max_tokens=300, tools=[tool],
                                        messages=messages) as stream:
                reply = stream.get_final_message()
            if reply.stop_reason != "tool_use":
                return reply.content[0].text
            messages.append({"role": "assistant",
                             "content": [b.model_dump() for b in reply.content]})
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": b.id,
                 "content": f"Rain in {b.input['city']}"}
                for b in reply.content if b.type == "tool_use"]})

    wait_for_gateway()
    answers = {"openai_agents": asyncio.run(openai_agent()), "anthropic": anthropic_agent()}
    print(json.dumps(answers), flush=True)
    # Done: say so before exiting (a Deployment's container that exits is restarted, and
    # its loop would run again; after this the gateway refuses every call).
    done = httpx.post(os.environ["LLMAGENTS_GATEWAY_URL"] + "/agent/complete",
                      json={"summary": "answered both questions"}, timeout=30)
    done.raise_for_status()
    """
)


def test_agent_frameworks_in_the_agent_container_finish_through_a_fallback_and_show_their_cost(
    kubectl: Kubectl,
    namespace: str,
    operator: OperatorProcess,  # noqa: F811
    process_kubelet: ProcessKubelet,
    fakes: Fakes,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The primary answers the first model call (the Agents SDK's tool calls), then fails
    # twice, which opens its breaker: everything after that is the fallback's.
    fakes.primary.update_faults(script=["ok", "503", "503"])
    setup(kubectl, fakes)
    agent = {"image": "example.com/llmagents-frameworks:1", "command": ["python", "-c", AGENT_LOOP]}
    apply_agent(kubectl, "frameworks", work={"agent": agent}, budget={"limit": 10})

    got = eventually(lambda: agent_answer(tmp_path / "kubelet"), timeout=180,
                     what="the agent loops' final answers")  # fmt: skip
    assert (
        got["openai_agents"] == "[fake-openai:gpt-4.1] tool results: Sunny in Paris; Noon in Paris"
    )
    assert got["anthropic"] == "[fake-openai:gpt-4.1] tool results: Rain in Oslo"
    assert fakes.primary.stats()["outcomes"].get("503") == 2
    assert fakes.fallback.stats()["requests"] == 3  # one Agents SDK turn, two Anthropic turns

    paid = spent(fakes.primary) + spent(fakes.fallback)

    def costed() -> dict[str, str] | None:
        cost = (status(kubectl, "frameworks").get("cost") or {}).get("spentUSD")
        row = table_row(kubectl, "frameworks")
        return row if cost == pytest.approx(paid) and row.get("COST") == format_usd(cost) else None

    row = eventually(costed, timeout=60, what="kubectl get llmagents shows the run's cost")
    assert row["COST"] != "$0" and row["PROVIDER"] == "fallback"

    # Completed and scaled to zero; the restarted container's second loop paid nothing.
    current = completed(kubectl, "frameworks", "answered both questions", timeout=60)
    assert current["completion"]["summary"] == "answered both questions"
    eventually(lambda: not any(c.running for c in process_kubelet.statuses(namespace)),
               timeout=60, what="the pod's processes stopped")  # fmt: skip
    row = table_row(kubectl, "frameworks")
    assert row["PHASE"] == "Completed" and row["COST"] == format_usd(paid)
    assert fakes.fallback.stats()["requests"] == 3
    assert status(kubectl, "frameworks")["cost"]["spentUSD"] == pytest.approx(paid)
