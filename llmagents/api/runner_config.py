"""The runner's configuration: the one document the operator renders and the runner reads.

The operator resolves an LLMAgent and its ProviderPool into a ``RunnerConfig`` and stores it
as ``runner.yaml`` in the ConfigMap ``<agent>-config``; the runner reads it through the API
(its Role allows exactly that ConfigMap). It never holds a credential: for each remote
provider it names the environment variable that carries the key, and the pod fills that
variable from the pool's Secret reference.

Ports and the sidecar's URL are in the document and in the pod's environment. The runner
takes the environment's values (``RunnerConfig.with_env``): on the shared test host the
process kubelet gives each pod its own loopback address and rewrites loopback URLs in the
environment (never in a ConfigMap read through the API) to it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from enum import StrEnum

import yaml
from pydantic import Field

from llmagents.api.base import ApiModel, Duration
from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.work import BudgetSpec, TaskSpec

CONFIG_KEY = "runner.yaml"
"""Key of the document inside the ConfigMap."""

ENV_AGENT = "LLMAGENTS_AGENT"
ENV_NAMESPACE = "LLMAGENTS_NAMESPACE"
ENV_POD_NAME = "LLMAGENTS_POD_NAME"
ENV_CONFIG_MAP = "LLMAGENTS_CONFIG_MAP"
ENV_METRICS_PORT = "LLMAGENTS_METRICS_PORT"
ENV_GATEWAY_PORT = "LLMAGENTS_GATEWAY_PORT"
ENV_ONNX_PORT = "LLMAGENTS_ONNX_PORT"
ENV_ONNX_URL = "LLMAGENTS_ONNX_URL"
ENV_ONNX_MODEL_DIR = "LLMAGENTS_ONNX_MODEL_DIR"
ENV_STATE_DIR = "LLMAGENTS_STATE_DIR"
"""The runner's own directory on a volume that outlives its process (the spend journal)."""
API_KEY_ENV_PREFIX = "LLMAGENTS_API_KEY_"

DEFAULT_METRICS_PORT = 9100
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_ONNX_PORT = 8090


def api_key_env(provider_name: str) -> str:
    """Name of the environment variable carrying a provider's API key in the runner pod."""
    return API_KEY_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", provider_name.upper())


def config_map_name(agent: str) -> str:
    """The ConfigMap holding an agent's ``runner.yaml``."""
    return f"{agent}-config"


def checkpoint_config_map_name(agent: str) -> str:
    """The ConfigMap the runner saves checkpoints to (and creates, on its first start)."""
    return f"{agent}-checkpoint"


RESULT_SHARDS = 4
"""Results ConfigMaps per agent: a bounded set, because a Role names objects one by one."""


def results_config_map_names(agent: str) -> list[str]:
    """The ConfigMaps the runner stores task results in, filled (and created) in order."""
    return [f"{agent}-results-{index}" for index in range(RESULT_SHARDS)]


class WorkMode(StrEnum):
    """How the runner works."""

    TASKS = "tasks"
    """Run the task list through the engine."""
    GATEWAY = "gateway"
    """Serve the local OpenAI-compatible gateway to the agent container."""


class AgentIdentity(ApiModel):
    """Which LLMAgent the runner works for."""

    name: str = Field(description="Name of the LLMAgent.")
    namespace: str = Field(description="Namespace of the LLMAgent.")
    uid: str = Field(description="UID of the LLMAgent; a recreated agent starts afresh.")


class RunnerPorts(ApiModel):
    """Ports the pod's processes listen on, all on the pod's loopback or network."""

    metrics: int = Field(default=DEFAULT_METRICS_PORT, ge=1, le=65535, description="/metrics.")
    gateway: int = Field(
        default=DEFAULT_GATEWAY_PORT, ge=1, le=65535, description="Local gateway (gateway mode)."
    )
    onnx: int = Field(default=DEFAULT_ONNX_PORT, ge=1, le=65535, description="ONNX sidecar.")

    def from_env(self, environ: Mapping[str, str] | None = None) -> RunnerPorts:
        """These ports with any the pod's environment overrides."""
        env = os.environ if environ is None else environ
        values = {
            "metrics": env.get(ENV_METRICS_PORT, self.metrics),
            "gateway": env.get(ENV_GATEWAY_PORT, self.gateway),
            "onnx": env.get(ENV_ONNX_PORT, self.onnx),
        }
        return RunnerPorts.model_validate(values)


class RunnerConfig(ApiModel):
    """Everything a runner needs, resolved by the operator from its LLMAgent and ProviderPool."""

    agent: AgentIdentity = Field(description="The LLMAgent served.")
    pool_name: str = Field(description="Name of the ProviderPool the providers come from.")
    pool: ProviderPoolSpec = Field(
        description=(
            "The pool's spec with the agent's strategy override applied; an onnx provider "
            "without baseURL means the sidecar at onnxUrl."
        )
    )
    mode: WorkMode = Field(description="Task list or gateway.")
    tasks: list[TaskSpec] | None = Field(default=None, description="The tasks (tasks mode).")
    agent_digest: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Digest of the agent container's spec (gateway mode): a completion recorded for "
            "another digest is of earlier work and is dropped."
        ),
    )
    budget: BudgetSpec | None = Field(default=None, description="Spending limit; unset = none.")
    max_runtime: Duration | None = Field(default=None, description="Wall-time limit.")
    checkpoint_interval: Duration = Field(description="How often to checkpoint.")
    checkpoint_config_map: str = Field(description="ConfigMap to write checkpoints to.")
    ports: RunnerPorts = Field(default_factory=RunnerPorts, description="Listening ports.")
    onnx_url: str | None = Field(
        default=None, description="Base URL of the ONNX sidecar, when the pod has one."
    )
    api_key_env: dict[str, str] = Field(
        default_factory=dict,
        description="Provider name -> environment variable holding its API key.",
    )

    def with_env(self, environ: Mapping[str, str] | None = None) -> RunnerConfig:
        """This configuration with the ports and sidecar URL the pod's environment sets."""
        env = os.environ if environ is None else environ
        return self.model_copy(
            update={
                "ports": self.ports.from_env(env),
                "onnx_url": env.get(ENV_ONNX_URL, self.onnx_url),
            }
        )

    def render(self) -> str:
        """The text of ``runner.yaml``: indented JSON, which is YAML too.

        The operator renders one per agent; PyYAML's representer (Python even with
        libyaml's emitter) took 4 ms of it, a tenth of the operator's CPU for a burst of
        new agents, and JSON takes a few microseconds.
        """
        return json.dumps(self.to_wire(), indent=2) + "\n"

    @classmethod
    def from_yaml(cls, text: str) -> RunnerConfig:
        """Parse YAML (or JSON) written by ``render`` or by hand."""
        return cls.model_validate(yaml.load(text, Loader=_LOADER))


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
