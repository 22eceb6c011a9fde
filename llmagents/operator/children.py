"""What the operator knows of each agent's children, and writing only those that differ.

A child is up to date when it carries the hash stamped on its manifest (builders.children).
Only Deployments are watched: they run the agent, so a deleted or edited one is repaired at
once. Watching the other five kinds (ServiceAccount, Role, RoleBinding, ConfigMap, Service)
would put five more events per agent through kopf's per-event machinery, which was a large
share of the operator's CPU at a thousand agents, to learn nothing but the echo of its own
writes. Their hashes come instead from:

- a label-selected LIST of every kind before the first write, so a restarted operator writes
  nothing that is already right;
- the operator's own applies;
- a LIST of each kind again every resync period (``audit``), one kind at a time, which finds
  children deleted or edited behind the operator's back (a ConfigMap deleted, a Role
  widened) and names the agents to reconcile.

Deployments are listed and resynced too, as a second line behind their watch.

A listing answers for the moment it was requested: whatever this process applied or saw
after that moment is newer, and the listing is not allowed to overrule it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmagents.operator.cluster_api import Api
from llmagents.operator.objects import AgentKey
from llmagents.operator.settings import ANNOTATION_HASH, LABEL_AGENT, LABEL_MANAGED_BY, MANAGED_BY

logger = logging.getLogger(__name__)

ChildKey = tuple[str, str, str]
"""(kind, namespace, name) of an object an agent owns."""

CHILD_KINDS: dict[str, str] = {
    # kind -> apiVersion
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
}
APPLY_WAVES = (
    ("ServiceAccount", "Role", "ConfigMap", "Service"),
    ("RoleBinding",),
    ("Deployment",),
)
"""Kinds applied together, wave after wave. The API server authorises a RoleBinding against
the Role it binds (nobody may grant rights they lack), so the Role must exist first; the
Deployment comes last so that its pod never starts before its identity, rights and
configuration exist."""
OURS = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
"""Label selector of every child the operator manages (the runner's ConfigMaps carry its own)."""


@dataclass(frozen=True, slots=True)
class Desired:
    """One child as the builders want it: its key, its hash, and its manifest as compact
    JSON. A thousand agents' manifests as dictionaries were 24 MB for the operator's whole
    life; as JSON they take about 10, and are decoded only to be written or compared."""

    key: ChildKey
    hash: str
    wire: bytes

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Desired:
        return cls(
            child_key(manifest),
            manifest["metadata"]["annotations"][ANNOTATION_HASH],
            json.dumps(manifest, separators=(",", ":")).encode(),
        )

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads(self.wire)
        return manifest


def child_key(manifest: Mapping[str, Any]) -> ChildKey:
    meta = manifest["metadata"]
    return (manifest["kind"], meta["namespace"], meta["name"])


def applied_hash(body: Mapping[str, Any]) -> str | None:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_HASH)


def owner(body: Mapping[str, Any]) -> AgentKey:
    meta = body.get("metadata") or {}
    return (meta.get("namespace", ""), (meta.get("labels") or {}).get(LABEL_AGENT, ""))


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field of ``desired`` has the same value in ``live``; fields the API
    server adds (defaults, status) do not matter."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and is_subset(v, live[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return desired == live or str(desired) == str(live)


class Children:
    """Hashes of the children as applied by this process and as last listed or watched."""

    def __init__(self, api: Api, *, namespaces: Sequence[str] = ()) -> None:
        self.api = api
        # Plain names are listed one by one; patterns (kopf's globs) need a cluster-wide list.
        plain = all(n and not any(c in n for c in "*?[!") for n in namespaces)
        self._scopes: list[str | None] = list(namespaces) if namespaces and plain else [None]
        self._applied: dict[ChildKey, str] = {}
        self._seen: dict[ChildKey, str | None] = {}  # None: the watch saw it deleted
        self._drifted: set[ChildKey] = set()  # edited behind our back: hashes still match
        self._changes = 0
        self._changed_at: dict[ChildKey, int] = {}  # when this process last learned of it
        self._loaded: asyncio.Future[None] | None = None

    async def load(self) -> None:
        """List every kind once (concurrent callers share the listing); raises on failure,
        and the next call tries again."""
        failed = (
            self._loaded is not None
            and self._loaded.done()
            and (self._loaded.cancelled() or self._loaded.exception() is not None)
        )
        if self._loaded is None or failed:
            self._loaded = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loaded)

    async def _load(self) -> None:
        counts = await asyncio.gather(*(self._load_kind(kind) for kind in CHILD_KINDS))
        logger.info("children listed: %d objects", sum(counts))

    async def _load_kind(self, kind: str) -> int:
        # The hash is all that is kept of each child, so only metadata is asked for, and
        # each page is dropped before the next is fetched: at a thousand agents, holding
        # the whole of six listings at once was the largest part of a restart's peak memory.
        listed = 0
        async for key, body in self._items(kind, metadata_only=True):
            self._seen.setdefault(key, applied_hash(body))
            listed += 1
        return listed

    async def _items(
        self, kind: str, *, metadata_only: bool = False
    ) -> AsyncIterator[tuple[ChildKey, dict[str, Any]]]:
        """Each listed child of ``kind`` with its key, page by page."""
        api_version = CHILD_KINDS[kind]
        for namespace in self._scopes:
            pages = self.api.list(
                api_version, kind, namespace=namespace, labels=OURS, metadata_only=metadata_only
            )
            async for page in pages:
                for body in page:
                    # Items of a list carry no kind and apiVersion; the manifests they are
                    # compared with do.
                    item = {**body, "kind": kind, "apiVersion": api_version}
                    yield child_key(item), item
                del page

    def _touch(self, key: ChildKey) -> None:
        self._changes += 1
        self._changed_at[key] = self._changes

    def _up_to_date(self, child: Desired) -> bool:
        key, wanted = child.key, child.hash
        if key not in self._drifted and wanted in (self._applied.get(key), self._seen.get(key)):
            self._applied[key] = wanted
            return True
        return False

    async def _write(self, child: Desired) -> None:
        await self.api.apply(child.manifest())
        self._applied[child.key] = child.hash
        self._drifted.discard(child.key)
        self._touch(child.key)

    async def apply_all(self, children: Iterable[Desired]) -> None:
        """Apply those of one agent's ``children`` that do not carry their hash yet (or
        drifted), in ``APPLY_WAVES``."""
        # Decided up front, so that a reconcile with nothing to write (most of them) costs
        # no task or gather at all.
        stale = {c.key[0]: c for c in children if not self._up_to_date(c)}
        for wave in APPLY_WAVES:
            batch = [stale[kind] for kind in wave if kind in stale]
            if len(batch) == 1:
                await self._write(batch[0])
            elif batch:
                results = await asyncio.gather(*map(self._write, batch), return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result

    def seen(self, key: ChildKey, body: Mapping[str, Any] | None) -> None:
        """A watch event: ``body`` as it is now, or None when it was deleted."""
        if body is None:
            self._applied.pop(key, None)
        self._seen[key] = applied_hash(body) if body is not None else None
        self._touch(key)

    def drifted(self, key: ChildKey) -> None:
        """``key`` differs from its manifest: write it on the next reconcile."""
        self._drifted.add(key)

    def forget(self, keys: Iterable[ChildKey]) -> None:
        for key in keys:
            self._applied.pop(key, None)
            self._seen.pop(key, None)
            self._drifted.discard(key)
            self._changed_at.pop(key, None)

    async def audit(
        self, kind: str, desired: Mapping[ChildKey, tuple[AgentKey, Desired]]
    ) -> set[AgentKey]:
        """List ``kind`` and compare with ``desired`` (child -> owner and child): the
        agents whose children of that kind are missing, replaced or edited."""
        since = self._changes
        # Compared page by page as listed: of each child only its hash is kept.
        listed: dict[ChildKey, str | None] = {}
        differ: set[ChildKey] = set()
        async for key, body in self._items(kind):
            listed[key] = applied_hash(body)
            entry = desired.get(key)
            if entry is not None and not is_subset(entry[1].manifest(), body):
                differ.add(key)

        def stale(key: ChildKey) -> bool:
            return self._changed_at.get(key, 0) <= since

        repair: set[AgentKey] = set()
        for key in [k for k in self._seen if k[0] == kind and k not in listed and stale(k)]:
            del self._seen[key]  # gone (or deleted with its agent): forget what was seen
            self._changed_at.pop(key, None)
        for key, (agent, child) in desired.items():
            if not stale(key):
                continue
            if key not in listed or listed[key] != child.hash:
                self._applied.pop(key, None)
                repair.add(agent)
                logger.info("agent %s/%s: %s %s %s", *agent, kind, key[2],
                            "is missing" if key not in listed else "was replaced")  # fmt: skip
            elif key in differ:
                self._drifted.add(key)
                repair.add(agent)
                logger.info("agent %s/%s: %s %s drifted; repairing", *agent, kind, key[2])
        for key, listed_hash in listed.items():
            if stale(key) and key not in self._drifted:
                self._seen[key] = listed_hash
        return repair
