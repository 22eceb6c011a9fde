"""The fault plan's short forms and the core's decisions: precedence, seeds, outages."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from llmagents.testing.fake_providers import Fault, FaultCore, FaultKind, FaultPlan, Latency


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_faults_read_statuses_retry_after_and_kind_names() -> None:
    assert Fault.model_validate("503") == Fault(kind=FaultKind.STATUS, status=503)
    assert Fault.model_validate(429) == Fault(kind=FaultKind.STATUS, status=429)
    dated = Fault.model_validate("429:2.5:date")
    assert (dated.status, dated.retry_after, dated.retry_after_http_date) == (429, 2.5, True)
    assert Fault.model_validate("stream-error").kind is FaultKind.STREAM_ERROR
    assert Fault.model_validate("reset").label == "reset"


@pytest.mark.parametrize("text", ["teapot", "200", "429:soon"])
def test_an_unknown_fault_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValidationError, match=r"status|unknown fault"):
        Fault.model_validate(text)


def test_latency_short_forms_sample_within_their_distribution() -> None:
    rng = random.Random(3)
    assert Latency.model_validate("40").sample(rng) == 0.04
    uniform = [Latency.model_validate("50:200").sample(rng) for _ in range(200)]
    assert min(uniform) >= 0.05 and max(uniform) <= 0.2
    normal = Latency.model_validate("100~0").sample(rng)
    assert normal == 0.1
    with pytest.raises(ValidationError):
        Latency.model_validate("200:50")


def test_a_script_runs_in_order_before_random_failures() -> None:
    core = FaultCore(FaultPlan(script=["429:1", "ok", "reset"], fail_rate=1.0, fail_with=["500"]))

    labels = [core.decide()[1] for _ in range(4)]

    assert labels == ["429", "ok", "reset", "500"]


def test_the_same_seed_gives_the_same_faults() -> None:
    plan = FaultPlan(seed=7, fail_rate=0.5, fail_with=["429", "500", "reset"])

    runs = [[core.decide()[1] for _ in range(50)] for core in (FaultCore(plan), FaultCore(plan))]

    assert runs[0] == runs[1]
    counts = Counter(runs[0])
    assert 10 < counts["ok"] < 40 and {"429", "500", "reset"} <= set(counts)


def test_outage_windows_follow_the_clock_and_override_the_script() -> None:
    clock = Clock()
    core = FaultCore(FaultPlan(outage_windows=["10:20"], script=["429"]), clock=clock)

    clock.now = 15.0
    during = core.decide()
    clock.now = 20.0
    after = core.decide()

    assert during == (Fault(kind=FaultKind.STATUS, status=503), "outage")
    assert after[1] == "429"


def test_switching_an_outage_on_keeps_the_scripts_progress() -> None:
    core = FaultCore(FaultPlan(script=["429", "500"]))
    assert core.decide()[1] == "429"

    core.update({"outage": True})
    assert core.decide()[1] == "outage"
    core.update({"outage": False})

    assert core.decide()[1] == "500"
    assert core.decide()[1] == "ok"


def test_an_invalid_update_leaves_the_plan_unchanged() -> None:
    core = FaultCore(FaultPlan(fail_rate=0.1))

    with pytest.raises(ValidationError):
        core.update({"fail_rate": 3})

    assert core.plan.fail_rate == 0.1
