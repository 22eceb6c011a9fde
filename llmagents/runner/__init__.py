"""The runner: the main process of each agent's pod (``llmagents runner``).

It loads the configuration the operator rendered, builds the one fallback engine of the
agent, restores and claims its checkpoint, and then works: the task list (task mode) or the
local OpenAI-compatible gateway for the agent's own container (gateway mode). Meanwhile it
keeps the checkpoint and the LLMAgent's status current, follows the fleet's view of
provider health, and exports Prometheus metrics.

The core (``Runner``) only talks to its edges through small protocols (``CheckpointStore``,
``StatusSink``, ``ResultStore``), so that it runs the same against the Kubernetes API,
against local files, and in tests.
"""

from llmagents.runner.checkpoint import Checkpoint, CheckpointFenced, CheckpointTooLarge
from llmagents.runner.checkpoint_store import CheckpointStore, FileCheckpointStore
from llmagents.runner.lifecycle import Runner
from llmagents.runner.metrics import METRIC_NAMES, RunnerMetrics
from llmagents.runner.pool_client import OpenStream, PoolClient
from llmagents.runner.results import FileResultStore, ResultStore, TaskResult
from llmagents.runner.status import MemoryStatusSink, RunnerReport, StatusSink

__all__ = [
    "METRIC_NAMES",
    "PoolClient",
    "Checkpoint",
    "CheckpointFenced",
    "CheckpointStore",
    "CheckpointTooLarge",
    "FileCheckpointStore",
    "FileResultStore",
    "MemoryStatusSink",
    "OpenStream",
    "ResultStore",
    "Runner",
    "RunnerMetrics",
    "RunnerReport",
    "StatusSink",
    "TaskResult",
]
