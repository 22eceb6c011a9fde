"""A gateway agent that finishes, on the real control plane: its container calls the gateway,
reports its work done (``POST /v1/agent/complete``) and exits; the operator completes the
agent and scales it to zero, its restarted container pays for nothing, ``kubectl get
llmagents`` keeps its cost, and only a changed agent container runs it again.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from test_operator import OperatorProcess, get
from test_runner_e2e import (  # noqa: F401 (fixtures)
    Fakes,
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
    import os, time
    import httpx, openai

    client = openai.OpenAI(max_retries=0, timeout=30)
    for _ in range(120):  # the gateway may still be starting
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            time.sleep(0.5)
    for step in range(2):
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": f"Step {step}?"}])
    run = os.environ["RUN"]
    httpx.post(os.environ["LLMAGENTS_GATEWAY_URL"] + "/agent/complete",
               json={"summary": f"run {run} done"}, timeout=30).raise_for_status()
    """
)


def _agent(run: int) -> dict[str, Any]:
    # The process kubelet runs the containers of images named llmagents.
    return {"image": "example.com/llmagents-finisher:1", "command": ["python", "-c", AGENT_LOOP],
            "env": [{"name": "RUN", "value": str(run)}]}  # fmt: skip


def test_a_gateway_agent_that_reports_done_completes_and_runs_again_only_when_changed(
    kubectl: Kubectl,
    namespace: str,
    operator: OperatorProcess,  # noqa: F811
    process_kubelet: ProcessKubelet,
    fakes: Fakes,  # noqa: F811
) -> None:
    setup(kubectl, fakes)
    apply_agent(kubectl, "finisher", work={"agent": _agent(1)}, budget={"limit": 10})

    completed(kubectl, "finisher", "run 1 done", timeout=120)
    eventually(lambda: not any(c.running for c in process_kubelet.statuses(namespace)),
               timeout=60, what="the pod's processes stopped")  # fmt: skip
    # Two calls, paid once: the container exited after reporting, and whatever ran after
    # (a restarted container, a restarted runner) was refused before any provider call.
    assert fakes.primary.stats()["requests"] == 2
    first = spent(fakes.primary)

    def costed() -> dict[str, str] | None:
        row = table_row(kubectl, "finisher")
        cost = (status(kubectl, "finisher").get("cost") or {}).get("totalUSD")
        return row if cost == pytest.approx(first) else None

    row = eventually(costed, timeout=30, what="the run's cost in status")
    assert row["PHASE"] == "Completed" and row["COST"] == format_usd(first) != "$0"

    # A raised budget is not new work: still completed, nothing runs.
    apply_agent(kubectl, "finisher", work={"agent": _agent(1)}, budget={"limit": 20})
    eventually(lambda: status(kubectl, "finisher").get("observedGeneration") == 2,
               timeout=30, what="the operator saw the raised budget")  # fmt: skip
    assert status(kubectl, "finisher")["phase"] == "Completed"
    assert get(kubectl, "deployment", "finisher")["spec"]["replicas"] == 0

    # A changed container is: it runs again, and the spend goes on from the first run's.
    apply_agent(kubectl, "finisher", work={"agent": _agent(2)}, budget={"limit": 20})
    current = completed(kubectl, "finisher", "run 2 done", timeout=120)
    assert fakes.primary.stats()["requests"] == 4
    both = spent(fakes.primary)
    assert both > first
    eventually(lambda: (status(kubectl, "finisher").get("cost") or {}).get("totalUSD")
               == pytest.approx(both), timeout=30, what="both runs' cost in status")  # fmt: skip
    assert current["completion"]["agentDigest"]
