"""What a checkpoint holds and how it is encoded; the stores that keep it are elsewhere.

A checkpoint (schema v1) is everything a restarted runner needs to go on as if it had not
stopped: progress through the task list (completed and failed task names, failures with
their error), the engine's snapshot (spend by provider with tokens, the budget's period and
spend, breakers with their transitions, health, current provider), when the runner first
started (``maxRuntime`` counts from there), the custom state gateway clients stored and,
once a gateway agent reported its work done, that completion (``completion``: when, its
summary and the digest of the agent container it holds for), and how far into each spend
journal its spend reaches (``spendJournals``, see ``spend_journal``).

Stores (``checkpoint_store`` for the protocol and the local file, ``configmap_store`` for
the ConfigMap) keep the encoded form this module produces and hand back what ``decode``
makes of it; the errors of the whole family (``CheckpointError``) are defined here.

Encoding: compact JSON; above ``COMPRESS_ABOVE`` bytes it is gzipped. A document that is
still larger than the store's limit is refused before any write (``CheckpointTooLarge``).

Decoding trusts nothing: whatever is stored may have been edited by hand or by something
hostile. Base64 that does not decode, gzip that inflates beyond ``MAX_DECOMPRESSED_BYTES``
(a gzip bomb), JSON nested deeper than ``MAX_NESTING``, an epoch that is not a number and a
field of the wrong type all end as ``CheckpointCorrupt``: the runner refuses to start with
that reason in its status and leaves the store as it found it.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from llmagents.api.status import AgentCompletion, Condition, ConditionStatus
from llmagents.errors import LLMAgentsError

SCHEMA = "llmagents.dev/checkpoint/v1"
COMPRESS_ABOVE = 64 * 1024
"""Documents larger than this many bytes of JSON are stored gzipped."""
MAX_CHECKPOINT_BYTES = 1_000_000
"""Largest stored payload: a ConfigMap holds at most 1 MiB of data, minus a margin."""
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
"""Largest JSON a stored gzip may inflate to; a real checkpoint is far below it."""
MAX_NESTING = 64
"""Deepest nesting of arrays and objects a checkpoint (custom state included) may have:
encoding and decoding recurse, and a deeper document would exhaust the stack."""


class CheckpointError(LLMAgentsError):
    """A checkpoint could not be read or written."""


class CheckpointTooLarge(CheckpointError):
    """The checkpoint, even compressed, exceeds what its store can hold."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"checkpoint of {size} bytes (compressed) exceeds the limit of {limit} bytes; "
            "store less custom state through the gateway"
        )
        self.size = size
        self.limit = limit


class CheckpointCorrupt(CheckpointError):
    """The stored checkpoint cannot be decoded or has an unknown schema."""


def corrupt_conditions(error: Exception) -> list[Condition]:
    """The ``CheckpointCorrupt`` condition a runner that cannot restore reports (else none)."""
    if not isinstance(error, CheckpointCorrupt):
        return []
    return [
        Condition(
            type="CheckpointCorrupt",
            status=ConditionStatus.TRUE,
            reason="CheckpointCorrupt",
            message=f"{error}; the runner does not start and leaves the checkpoint as it is: "
            "repair it, or delete it to start afresh (its progress and spend are then lost)",
            last_transition_time=datetime.now(UTC),
        )
    ]


class VersionConflict(CheckpointError):
    """Someone wrote the checkpoint since the version the writer expected."""


class CheckpointFenced(CheckpointError):
    """A newer runner of the same agent owns the checkpoint; this runner must stop."""

    def __init__(self, ours: int, theirs: int) -> None:
        super().__init__(
            f"a newer runner (epoch {theirs}) took over the checkpoint from this one "
            f"(epoch {ours}); this runner stops working"
        )
        self.ours = ours
        self.theirs = theirs


class StoreUnavailable(CheckpointError):
    """The store could not be reached; the write is retried later."""


@dataclass(slots=True)
class Checkpoint:
    """One saved state of a runner (schema v1)."""

    agent_uid: str
    epoch: int
    sequence: int
    written_at: datetime
    started_at: datetime
    engine: dict[str, Any]
    total_tasks: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    custom_state: Any = None
    unstored_results: list[dict[str, Any]] = field(default_factory=list)
    """Rows of ended tasks whose results may not be in the results store yet: written there
    again after a restart (writes are idempotent), dropped once stored."""
    completion: AgentCompletion | None = None
    """The gateway agent's report that its work is done; a runner restoring it serves no
    paid call."""
    spend_journals: dict[str, int] = field(default_factory=dict)
    """Per spend journal (by id), the number of its last entry whose charge this
    checkpoint's spend includes (``spend_journal``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "agentUID": self.agent_uid,
            "epoch": self.epoch,
            "sequence": self.sequence,
            "writtenAt": self.written_at.isoformat(),
            "startedAt": self.started_at.isoformat(),
            "progress": {
                "total": self.total_tasks,
                "done": len(self.completed),
                "failed": len(self.failed),
            },
            "completed": self.completed,
            "failed": self.failed,
            "engine": self.engine,
            "customState": self.custom_state,
            "unstoredResults": self.unstored_results,
            "completion": self.completion.to_wire() if self.completion is not None else None,
            "spendJournals": self.spend_journals,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        """The checkpoint in ``data``; ``CheckpointCorrupt`` names the first bad field."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise CheckpointCorrupt(f"checkpoint schema {found!r} is not {SCHEMA!r}")
        if nesting_depth(data) > MAX_NESTING:
            raise CheckpointCorrupt(f"checkpoint is nested deeper than {MAX_NESTING} levels")
        try:
            completed = data["completed"]
            failed = data["failed"]
            if not isinstance(completed, list) or not all(isinstance(n, str) for n in completed):
                raise ValueError("completed is not a list of task names")
            if not isinstance(failed, dict) or not all(isinstance(v, str) for v in failed.values()):
                raise ValueError("failed is not a map of task names to errors")
            if not isinstance(data["engine"], dict):
                raise ValueError("engine is not an object")
            unstored = data.get("unstoredResults") or []
            if not isinstance(unstored, list) or not all(
                isinstance(r, dict) and isinstance(r.get("task"), str) for r in unstored
            ):
                raise ValueError("unstoredResults is not a list of result rows")
            journals = data.get("spendJournals") or {}
            if not isinstance(journals, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in journals.values()
            ):
                raise ValueError("spendJournals is not a map of journal ids to entry numbers")
            return cls(
                agent_uid=_text(data, "agentUID"),
                epoch=whole_field(data, "epoch"),
                sequence=whole_field(data, "sequence"),
                written_at=datetime.fromisoformat(_text(data, "writtenAt")),
                started_at=datetime.fromisoformat(_text(data, "startedAt")),
                engine=data["engine"],
                total_tasks=whole_field(data["progress"], "total"),
                completed=list(completed),
                failed=dict(failed),
                custom_state=data.get("customState"),
                unstored_results=list(unstored),
                completion=_completion(data.get("completion")),
                spend_journals=dict(journals),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointCorrupt(f"checkpoint is missing or has a bad field: {exc}") from None


def _completion(raw: Any) -> AgentCompletion | None:
    if raw is None:
        return None
    try:
        return AgentCompletion.model_validate(raw)
    except ValidationError as error:
        # ValidationError is a ValueError: from_dict reports it as a bad field.
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"completion.{where}: {first['msg']}") from None


def whole_field(data: dict[str, Any], key: str) -> int:
    """``data[key]`` as a whole number of at least 0; ``ValueError`` when it is not."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} {value!r} is not a whole number of at least 0")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} {value!r} is not a string")
    return value


def nesting_depth(value: Any, *, limit: int = MAX_NESTING) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), counted without
    recursion and only until ``limit`` is passed (then ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def parse_epoch(raw: object, *, where: str) -> int:
    """A stored writer's epoch (absent: 0); ``CheckpointCorrupt`` when it is not a number."""
    if raw is None:
        return 0
    try:
        epoch = int(str(raw))
    except ValueError:
        raise CheckpointCorrupt(f"{where}: epoch {str(raw)[:40]!r} is not a number") from None
    if epoch < 0:
        raise CheckpointCorrupt(f"{where}: epoch {epoch} is negative")
    return epoch


def b64decode(text: object, *, where: str) -> bytes:
    """Base64 as stored in a ConfigMap's binaryData or the file envelope, strictly."""
    if not isinstance(text, str):
        raise CheckpointCorrupt(f"{where}: compressed checkpoint is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise CheckpointCorrupt(f"{where}: compressed checkpoint is not valid base64") from None


@dataclass(frozen=True, slots=True)
class Encoded:
    """A checkpoint ready to store: ``payload`` is JSON, or gzipped JSON when ``compressed``."""

    payload: bytes
    compressed: bool
    json_size: int

    @property
    def size(self) -> int:
        return len(self.payload)


def encode(
    checkpoint: Checkpoint,
    *,
    compress_above: int = COMPRESS_ABOVE,
    limit: int = MAX_CHECKPOINT_BYTES,
    redact: Callable[[str], str] | None = None,
) -> Encoded:
    """The stored form of ``checkpoint``; ``CheckpointTooLarge`` when it cannot fit.

    ``redact`` cleans the JSON text (provider messages inside the engine's snapshot).
    """
    text = json.dumps(checkpoint.to_dict(), separators=(",", ":"))
    if redact is not None:
        text = redact(text)
    raw = text.encode()
    encoded = Encoded(raw, False, len(raw))
    if len(raw) > compress_above:
        encoded = Encoded(gzip.compress(raw, compresslevel=6, mtime=0), True, len(raw))
    if encoded.size > limit:
        raise CheckpointTooLarge(encoded.size, limit)
    return encoded


def decode(payload: bytes, *, compressed: bool) -> Checkpoint:
    """The checkpoint a store holds; ``CheckpointCorrupt`` for anything else."""
    try:
        raw = _gunzip(payload) if compressed else payload
        data = json.loads(raw)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise CheckpointCorrupt(f"checkpoint does not decode: {exc}") from None
    except RecursionError:
        raise CheckpointCorrupt(f"checkpoint is nested deeper than {MAX_NESTING} levels") from None
    return Checkpoint.from_dict(data)


def _gunzip(payload: bytes) -> bytes:
    """Inflate one gzip member, refusing to produce more than ``MAX_DECOMPRESSED_BYTES``."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    raw = inflater.decompress(payload, MAX_DECOMPRESSED_BYTES + 1)
    if len(raw) > MAX_DECOMPRESSED_BYTES or inflater.unconsumed_tail:
        raise CheckpointCorrupt(
            f"compressed checkpoint inflates beyond {MAX_DECOMPRESSED_BYTES} bytes; refused"
        )
    if not inflater.eof:
        raise CheckpointCorrupt("compressed checkpoint is cut short")
    return raw
