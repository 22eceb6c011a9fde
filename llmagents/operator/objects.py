"""The operator's view of LLMAgent and ProviderPool objects: parsed once, passed around.

Raw bodies come from kopf's watch; the builders and the phase logic take these typed
views instead, so they never touch dictionaries of unknown shape. A spec the API server
accepted can still fail the pydantic models (a rule only they check); that is kept as
``error`` rather than raised, because it becomes a condition on the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from llmagents.api.agent import LLMAgentSpec
from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.status import LLMAgentStatus

AgentKey = tuple[str, str]
"""(namespace, name) of an LLMAgent."""
PoolKey = tuple[str, str]
"""(namespace, name) of a ProviderPool."""


def _error_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _timestamp(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class AgentObject:
    """One LLMAgent as last seen."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    spec: LLMAgentSpec | None
    error: str | None
    status: LLMAgentStatus
    raw_status: Mapping[str, Any]

    @property
    def key(self) -> AgentKey:
        return (self.namespace, self.name)

    @property
    def pool_name(self) -> str | None:
        return self.spec.pool_ref.name if self.spec else None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AgentObject:
        meta = body.get("metadata", {})
        spec: LLMAgentSpec | None = None
        error: str | None = None
        try:
            spec = LLMAgentSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            error = _error_text(exc)
        raw_status = body.get("status") or {}
        try:
            status = LLMAgentStatus.model_validate(raw_status)
        except ValidationError:
            # A status the models cannot read is treated as no report; the writer fixes it.
            status = LLMAgentStatus()
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            created=_timestamp(meta.get("creationTimestamp")),
            spec=spec,
            error=error,
            status=status,
            raw_status=raw_status,
        )


@dataclass(frozen=True, slots=True)
class PoolObject:
    """One ProviderPool as last seen."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: ProviderPoolSpec | None
    error: str | None
    raw_status: Mapping[str, Any]

    @property
    def key(self) -> PoolKey:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PoolObject:
        meta = body.get("metadata", {})
        spec: ProviderPoolSpec | None = None
        error: str | None = None
        try:
            spec = ProviderPoolSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            error = _error_text(exc)
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            spec=spec,
            error=error,
            raw_status=body.get("status") or {},
        )
