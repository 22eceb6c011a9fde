"""LLMAgent: one long-running agent, its work, its budget and how its pod is shaped.

``LLMAgentSpec`` is the CRD schema of ``LLMAgent.spec``. The operator reads it together with
the referenced ProviderPool and renders the runner's configuration from both (see
``runner_config``); the engine-facing parts (tasks, budget) are the models of ``work``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from llmagents.api.base import ApiModel, Duration, cel, list_map
from llmagents.api.pool import DNS_LABEL, Strategy
from llmagents.api.work import BudgetSpec, TaskSpec

MIN_CHECKPOINT_INTERVAL = timedelta(seconds=1)
"""Each checkpoint is an API write; more than one a second loads the API server for nothing."""
MAX_TASKS = 1000
"""Bound on a task list; keeps the resource, and the ConfigMap rendered from it, small."""

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity: ``2``, ``"500m"``, ``"1Gi"``."""


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Kubernetes pod spec."""

    limits: dict[str, Quantity] | None = Field(
        default=None, description="Most a container may use, by resource name (cpu, memory)."
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, description="What the scheduler reserves, by resource name (cpu, memory)."
    )


class PoolRef(ApiModel):
    """A ProviderPool in the agent's namespace."""

    name: str = Field(
        min_length=1, max_length=253, description="Name of the ProviderPool to call models from."
    )


class EnvVar(ApiModel):
    """An environment variable of the agent's container."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the variable.",
    )
    value: str = Field(default="", max_length=32_768, description="Value of the variable.")


class AgentContainerSpec(ApiModel):
    """The user's own agent program, run beside the runner in the same pod.

    It calls models through the runner's local OpenAI-compatible gateway (``OPENAI_BASE_URL``
    is set for it), so it gets fallback, breakers and budget without knowing any provider.
    """

    image: str = Field(min_length=1, max_length=1024, description="Container image of the agent.")
    command: list[str] | None = Field(
        default=None, max_length=64, description="Entrypoint override, as in a pod spec."
    )
    args: list[str] | None = Field(
        default=None, max_length=256, description="Arguments, as in a pod spec."
    )
    env: Annotated[list[EnvVar], Field(max_length=128)] | None = Field(
        default=None,
        description="Extra environment variables; the gateway variables are set by the operator.",
        json_schema_extra=list_map("name"),
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the agent container."
    )


class WorkSpec(ApiModel):
    """What the agent does: a task list run by the runner, or the user's own agent container."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.tasks) != has(self.agent)",
                (
                    "work needs exactly one of tasks (a task list) or agent (a container "
                    "that calls the runner's gateway)"
                ),
            ),
        )
    )

    tasks: Annotated[list[TaskSpec], Field(min_length=1, max_length=MAX_TASKS)] | None = Field(
        default=None,
        description="Tasks run in order; completed ones survive restarts through checkpoints.",
        json_schema_extra=list_map("name"),
    )
    agent: AgentContainerSpec | None = Field(
        default=None,
        description="An agent container that calls models through the runner's local gateway.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkSpec:
        if (self.tasks is None) == (self.agent is None):
            raise ValueError("work: set exactly one of tasks or agent")
        return self

    def agent_digest(self) -> str | None:
        """A digest of the agent container's spec (None for a task list).

        A gateway agent's reported completion holds for the container it was reported by:
        the runner records this digest with it and the operator compares it with the spec's,
        so a changed image, command, args, env or resources starts the agent again, as a
        changed task list does, and nothing else (a raised budget, say) does.
        """
        if self.agent is None:
            return None
        wire = json.dumps(self.agent.to_wire(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(wire.encode()).hexdigest()[:16]


class ModelVolume(ApiModel):
    """Where the ONNX sidecar reads its model from, instead of the model in its image."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.claimName) != has(self.hostPath)",
                "modelVolume needs exactly one of claimName or hostPath",
            ),
        )
    )

    claim_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_LABEL,
        description="A PersistentVolumeClaim holding the model.",
    )
    host_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        pattern=r"^/",
        description="A directory on the node holding the model.",
    )
    sub_path: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^[^/]",
        description="Directory of the model inside the volume; the volume's root when unset.",
    )


class OnnxSidecarSpec(ApiModel):
    """The local ONNX model server beside the runner; added only when the pool has an
    onnx provider."""

    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Image of the sidecar; the operator's runner image when unset.",
    )
    model_volume: ModelVolume | None = Field(
        default=None, description="Volume holding the model; the image's model when unset."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the sidecar."
    )


class LLMAgentSpec(ApiModel):
    """Desired state of an LLMAgent: its pool, work, budget and limits."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "duration(self.checkpointInterval) >= duration('1s')",
                "checkpointInterval must be at least 1s, like '30s'",
            ),
            (
                "!has(self.maxRuntime) || duration(self.maxRuntime) > duration('0s')",
                "maxRuntime must be greater than zero; leave it out to run until stopped",
            ),
        )
    )

    pool_ref: PoolRef = Field(description="The ProviderPool the agent calls models through.")
    strategy: Strategy | None = Field(
        default=None, description="Overrides the pool's strategy for this agent only."
    )
    work: WorkSpec = Field(description="The agent's work: a task list or an agent container.")
    budget: BudgetSpec | None = Field(
        default=None, description="Spending limit; unset means no limit."
    )
    max_runtime: Duration | None = Field(
        default=None,
        description=(
            "Wall time after which the agent stops (phase Completed); unset means no limit."
        ),
    )
    checkpoint_interval: Duration = Field(
        default=timedelta(seconds=30),
        description=(
            "How often the runner saves progress and spend to its checkpoint ConfigMap; "
            "at least 1s."
        ),
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the runner container."
    )
    onnx: OnnxSidecarSpec | None = Field(
        default=None,
        description="Settings of the ONNX sidecar, when the pool has an onnx provider.",
    )
    suspend: bool = Field(
        default=False, description="Scale the agent to zero without deleting it (phase Suspended)."
    )

    @model_validator(mode="after")
    def _positive_durations(self) -> LLMAgentSpec:
        if self.checkpoint_interval < MIN_CHECKPOINT_INTERVAL:
            raise ValueError("checkpointInterval must be at least 1s")
        if self.max_runtime is not None and self.max_runtime <= timedelta(0):
            raise ValueError("maxRuntime must be greater than zero")
        return self
