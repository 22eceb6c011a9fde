"""LLMAgent spec, status halves and the runner's configuration document."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import yaml
from pydantic import ValidationError

from llmagents.api.agent import LLMAgentSpec
from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.runner_config import (
    RunnerConfig,
    RunnerPorts,
    api_key_env,
    checkpoint_config_map_name,
    config_map_name,
)
from llmagents.api.status import (
    LLMAgentStatus,
    OperatorAgentStatus,
    RunnerAgentStatus,
    format_usd,
    status_apply_body,
)

TASKS = {"tasks": [{"name": "hello", "prompt": "Say hello."}]}


def _spec(**extra) -> dict:
    return {"poolRef": {"name": "pool"}, "work": TASKS, **extra}


def test_agent_spec_reads_camel_case_and_fills_defaults():
    spec = LLMAgentSpec.model_validate(_spec(maxRuntime="1h30m", budget={"limit": 5}))
    assert spec.pool_ref.name == "pool"
    assert spec.max_runtime == timedelta(hours=1, minutes=30)
    assert spec.checkpoint_interval == timedelta(seconds=30)
    assert spec.budget is not None and spec.budget.on_exhausted.value == "stop"
    assert spec.suspend is False
    assert spec.to_wire()["maxRuntime"] == "1h30m"


@pytest.mark.parametrize(
    "work",
    [
        {},
        {**TASKS, "agent": {"image": "example/agent:1"}},
    ],
    ids=["neither", "both"],
)
def test_work_needs_exactly_one_of_tasks_or_agent(work):
    with pytest.raises(ValidationError, match="exactly one of tasks or agent"):
        LLMAgentSpec.model_validate(_spec(work=work))


def test_gateway_agent_takes_a_container():
    spec = LLMAgentSpec.model_validate(
        _spec(work={"agent": {"image": "example/agent:1", "env": [{"name": "A", "value": "b"}]}})
    )
    assert spec.work.agent is not None and spec.work.agent.env[0].name == "A"


def test_a_zero_max_runtime_is_refused():
    with pytest.raises(ValidationError, match="maxRuntime must be greater than zero"):
        LLMAgentSpec.model_validate(_spec(maxRuntime="0s"))


@pytest.mark.parametrize("interval", ["0s", "999ms", "0.5s"])
def test_a_checkpoint_interval_below_one_second_is_refused(interval):
    # Each checkpoint is an API write; sub-second ones would load the API server for nothing.
    with pytest.raises(ValidationError, match="checkpointInterval must be at least 1s"):
        LLMAgentSpec.model_validate(_spec(checkpointInterval=interval))
    assert LLMAgentSpec.model_validate(_spec(checkpointInterval="1s")).checkpoint_interval == (
        timedelta(seconds=1)
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("checkpointInterval", "99999999999h"), ("maxRuntime", "99999999999h"),
     ("maxRuntime", "87600h1s"), ("maxRuntime", "90000h" * 9), ("maxRuntime", 1e300),
     ("maxRuntime", float("inf")), ("maxRuntime", float("nan"))],
)  # fmt: skip
def test_a_duration_past_the_api_s_bound_is_a_validation_error_never_an_overflow(field, value):
    with pytest.raises(ValidationError, match="at most 87600h"):
        LLMAgentSpec.model_validate(_spec(**{field: value}))


def test_pool_durations_are_bounded_too():
    pool = {"providers": [{"name": "local", "type": "onnx", "model": "m"}]}
    for path, value in [("retry", {"initialDelay": "99999999999h"}),
                        ("health", {"window": "99999999999h"})]:  # fmt: skip
        with pytest.raises(ValidationError, match="at most 87600h"):
            ProviderPoolSpec.model_validate({**pool, path: value})
    assert ProviderPoolSpec.model_validate({**pool, "retry": {"maxDelay": "87600h"}})


def test_resources_take_kubernetes_quantities():
    spec = LLMAgentSpec.model_validate(
        _spec(resources={"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": 1}})
    )
    assert spec.resources is not None and spec.resources.requests == {"cpu": 1}


def test_api_key_env_is_an_env_var_name_derived_from_the_provider():
    assert api_key_env("claude") == "LLMAGENTS_API_KEY_CLAUDE"
    assert api_key_env("open-router-2") == "LLMAGENTS_API_KEY_OPEN_ROUTER_2"


def test_derived_config_map_names():
    assert config_map_name("a") == "a-config"
    assert checkpoint_config_map_name("a") == "a-checkpoint"


def test_runner_ports_take_the_environment_over_the_document():
    ports = RunnerPorts().from_env({"LLMAGENTS_METRICS_PORT": "19100"})
    assert (ports.metrics, ports.gateway, ports.onnx) == (19100, 8080, 8090)


def _config() -> RunnerConfig:
    return RunnerConfig.model_validate(
        {
            "agent": {"name": "a", "namespace": "ns", "uid": "u-1"},
            "poolName": "pool",
            "pool": {
                "providers": [
                    {"name": "local", "type": "onnx", "model": "smollm2"},
                    {
                        "name": "claude",
                        "type": "anthropic",
                        "model": "m",
                        "secretRef": {"name": "s"},
                    },
                ]
            },
            "mode": "tasks",
            "tasks": TASKS["tasks"],
            "checkpointInterval": "30s",
            "checkpointConfigMap": "a-checkpoint",
            "apiKeyEnv": {"claude": "LLMAGENTS_API_KEY_CLAUDE"},
            "onnxUrl": "http://127.0.0.1:8090",
        }
    )


def test_runner_config_round_trips_through_its_rendered_text():
    config = _config()
    text = config.render()
    assert RunnerConfig.from_yaml(text) == config
    assert RunnerConfig.from_yaml(yaml.safe_dump(json.loads(text))) == config  # hand-written YAML
    keys = set(re.findall(r'"(\w+)":', text))
    assert "apiKeyEnv" in keys and "apiKey" not in keys


def test_runner_status_summarises_health_and_tasks_in_the_same_write():
    status = RunnerAgentStatus.model_validate(
        {
            "providers": [
                {"name": "a", "healthy": True},
                {"name": "b", "healthy": False, "breakerState": "open"},
                {"name": "c", "healthy": True},
            ],
            "tasks": {"done": 5, "failed": 1, "total": 10},
            "cost": {"spentUSD": 0.25},
        }
    )
    wire = status.to_wire()
    assert wire["healthy"] == "2/3"
    assert wire["tasks"]["summary"] == "5/10"
    assert wire["cost"]["spentUSD"] == 0.25
    assert wire["cost"]["display"] == "$0.25"


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.0, "$0"), (1234.567, "$1,234.57"), (0.42, "$0.42"), (0.01, "$0.01"),
     (0.00999, "$0.01"), (0.0042, "$0.0042"), (1.29e-05, "$0.000013"), (3e-09, "$0.000000003")],
)  # fmt: skip
def test_cost_reads_as_dollars_with_two_significant_digits_below_a_cent(amount, text):
    assert format_usd(amount) == text


def test_status_halves_do_not_overlap_and_make_up_the_whole():
    runner = set(RunnerAgentStatus.model_fields)
    operator = set(OperatorAgentStatus.model_fields)
    assert runner.isdisjoint(operator)
    assert runner | operator == set(LLMAgentStatus.model_fields)


def test_status_apply_body_carries_only_the_writers_fields():
    body = status_apply_body(
        kind="LLMAgent",
        name="a",
        namespace="ns",
        status=OperatorAgentStatus(phase="Running", observed_generation=3),
    )
    assert body["apiVersion"] == "llmagents.dev/v1alpha1"
    assert body["status"] == {"phase": "Running", "observedGeneration": 3}


def test_runner_config_takes_ports_and_sidecar_url_from_the_pod_environment():
    config = _config().with_env(
        {"LLMAGENTS_ONNX_URL": "http://127.0.5.9:8090", "LLMAGENTS_GATEWAY_PORT": "18080"}
    )
    assert config.onnx_url == "http://127.0.5.9:8090"
    assert config.ports.gateway == 18080
