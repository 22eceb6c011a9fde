"""The operator's view of LLMAgent and ProviderPool objects: parsed once, passed around.

Raw bodies come from kopf's watch; the builders and the phase logic take these typed
views instead, so they never touch dictionaries of unknown shape. A spec the API server
accepted can still fail the pydantic models (a rule only they check); that is kept as
``error`` rather than raised, because it becomes a condition on the object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

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


_Spec = TypeVar("_Spec", bound=BaseModel)


class SpecCache:
    """Specs parsed once per object generation.

    Most events of an agent change only its status or its children, and all of a pool's
    agents read the same pool: validating an unchanged spec again each time was the
    largest share of a reconcile that has nothing to write.
    """

    def __init__(self) -> None:
        # (model, namespace, name) -> (uid, generation, spec, error)
        self._parsed: dict[tuple[type, str, str], tuple[str, int, Any, str | None]] = {}

    def parse(self, model: type[_Spec], body: Mapping[str, Any]) -> tuple[_Spec | None, str | None]:
        meta = body.get("metadata", {})
        key = (model, meta.get("namespace", ""), meta.get("name", ""))
        version = (meta.get("uid", ""), int(meta.get("generation") or 0))
        cached = self._parsed.get(key)
        if cached is not None and cached[:2] == version:
            return cached[2], cached[3]
        spec, error = _parse(model, body)
        self._parsed[key] = (*version, spec, error)
        return spec, error

    def forget(self, model: type[BaseModel], key: tuple[str, str]) -> None:
        self._parsed.pop((model, *key), None)


def _parse(model: type[_Spec], body: Mapping[str, Any]) -> tuple[_Spec | None, str | None]:
    try:
        return model.model_validate(body.get("spec") or {}), None
    except ValidationError as exc:
        return None, _error_text(exc)
    except Exception as exc:
        # Anything else a validator lets escape (an overflow was one) must become the
        # object's condition too, not a reconcile that fails and retries forever.
        return None, f"{type(exc).__name__}: {exc}"


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
    managed_fields: Sequence[Mapping[str, Any]] | None = None
    """``metadata.managedFields`` as the watch delivered them: who wrote which field."""

    @property
    def key(self) -> AgentKey:
        return (self.namespace, self.name)

    @property
    def pool_name(self) -> str | None:
        return self.spec.pool_ref.name if self.spec else None

    @classmethod
    def from_body(cls, body: Mapping[str, Any], specs: SpecCache | None = None) -> AgentObject:
        meta = body.get("metadata", {})
        spec, error = specs.parse(LLMAgentSpec, body) if specs else _parse(LLMAgentSpec, body)
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
            managed_fields=meta.get("managedFields"),
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
    managed_fields: Sequence[Mapping[str, Any]] | None = None
    """``metadata.managedFields`` as the watch delivered them: who wrote which field."""

    @property
    def key(self) -> PoolKey:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], specs: SpecCache | None = None) -> PoolObject:
        meta = body.get("metadata", {})
        spec, error = (
            specs.parse(ProviderPoolSpec, body) if specs else _parse(ProviderPoolSpec, body)
        )
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            spec=spec,
            error=error,
            raw_status=body.get("status") or {},
            managed_fields=meta.get("managedFields"),
        )
