"""What ``kubectl describe`` shows after a run in which two of three providers failed: read by
eye (run with -s; a capture is in docs/operator.md), and checked for what a platform engineer
looks for first: each provider's breaker, when and why, its figures, and the Events with
their counts, on the agent and on the pool."""

from __future__ import annotations

import re

import pytest
from test_operator import OperatorProcess
from test_runner_e2e import (  # noqa: F401 (fixtures; crds is autouse)
    Fakes,
    apply_agent,
    crds,
    fakes,
    model_kubelet,
    operator,
    setup,
    status,
    tiny_model,
)

from tooling.cluster import Kubectl
from tooling.kubelet import ProcessKubelet
from tooling.polling import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_describe_after_two_providers_failed_reads_well_with_events_and_their_counts(
    kubectl: Kubectl,
    operator: OperatorProcess,  # noqa: F811
    model_kubelet: ProcessKubelet,  # noqa: F811
    fakes: Fakes,  # noqa: F811
) -> None:
    fakes.primary.update_faults(outage=True)
    fakes.fallback.update_faults(outage=True)
    setup(kubectl, fakes, local=True)
    apply_agent(kubectl, "writer", tasks=6, budget={"limit": 10})
    eventually(lambda: status(kubectl, "writer").get("phase") == "Completed", timeout=180,
               what="writer completed on the local model")  # fmt: skip
    # The operator scaled it to zero: the runner flushed its Events' series on SIGTERM.
    eventually(lambda: not [p for p in kubectl.json("get", "pods")["items"]
                            if p["metadata"]["name"].startswith("writer-")],
               timeout=60, what="the runner pod gone")  # fmt: skip

    def described(kind: str, name: str, *wanted: str) -> str | None:
        text = kubectl("describe", kind, name).stdout
        return text if all(w in text for w in wanted) else None

    agent = eventually(lambda: described("llmagent", "writer", "TasksCompleted", "(x"),
                       timeout=30, what="the agent's Events with counts")  # fmt: skip
    print(agent)
    events = agent[agent.index("Events:") :]
    for provider in ("primary", "fallback"):
        assert re.search(rf"Warning\s+CircuitOpened\s+.*provider {provider}: circuit open until",
                         events), events  # fmt: skip
    # Six tasks fell back from the fallback to the local model: one Event, counted.
    assert re.search(r"Normal\s+FellBack\s+\S+ \(x\d+ over \S+\)\s+llmagents.dev/runner\s+"
                     r"fell back from fallback to local", events), events  # fmt: skip
    assert "6 task(s) done, 0 failed" in events
    body = agent[: agent.index("Events:")]
    for field in ("Breaker Reason:", "Open Since:", "Open Until:", "Error Rate:",
                  "latencyP95Ms:", "Cost USD:", "Last Failure:", "Source:  "):  # fmt: skip
        assert field in body, field
    # An error type that repeats the error kind is said once.
    assert "server_error: server_error" not in agent

    pool = eventually(lambda: described("providerpool", "pool", "CircuitOpened", "local"),
                      timeout=60, what="the pool's Events")  # fmt: skip
    print(pool)
    pool_events = pool[pool.index("Events:") :]
    for provider in ("primary", "fallback"):
        assert f"provider {provider}: circuit open for 1 of 1 agents since" in pool_events
