"""kopf wiring: indexes of agents and pools, and thin event handlers that call the reconciler.

Every handler and index function is ``async``: kopf runs synchronous ones in a thread pool,
which at a thousand agents costs more than the handlers themselves.

Every handler is an *event* handler (level-triggered), not a create/update handler: kopf
then keeps no progress annotations and adds no finalizers, so it writes nothing of its own
to the objects, and the reconciler alone decides what to write. The indexes are filled by
kopf before the first handler runs.

Of the children, only Deployments are watched (through the label
``app.kubernetes.io/managed-by=llmagents-operator``): their events are how a deleted or
edited Deployment gets repaired at once. The other kinds are listed, not watched; see
``children``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from llmagents.api.status import GROUP, VERSION
from llmagents.events import EventRecorder
from llmagents.kube import KubeClient
from llmagents.operator.children import OURS
from llmagents.operator.cluster_api import ApiEventSink, ClusterApi
from llmagents.operator.events import CONTROLLER, OperatorEvents
from llmagents.operator.metrics import default_gauges
from llmagents.operator.objects import AgentKey, PoolKey
from llmagents.operator.ownership import status_applies
from llmagents.operator.reconcile import RESYNC_SECONDS, Reconciler
from llmagents.operator.settings import LABEL_MANAGED_BY, MANAGED_BY, OperatorSettings

logger = logging.getLogger(__name__)

DEPLOYMENTS = ("apps", "v1", "deployments")
"""kopf's selector of Deployments, in the tuple form its settings take."""
_OURS = {LABEL_MANAGED_BY: MANAGED_BY}


def _first(index: Any, key: Any) -> Any:
    store = index.get(key) if index is not None else None
    return next(iter(store), None) if store else None


@dataclass(slots=True)
class KopfViews:
    """``reconcile.Views`` over kopf's indexes, which handlers receive as keyword args."""

    indexes: dict[str, Any] = field(default_factory=dict)

    def bind(self, kwargs: Mapping[str, Any]) -> None:
        # The index objects live as long as the operator; remembering them lets scheduled
        # work (outside any handler) read them too.
        if not self.indexes:
            self.indexes = {i: kwargs[i] for i in ("agents", "pools")}

    def agent(self, key: AgentKey) -> Mapping[str, Any] | None:
        found: Mapping[str, Any] | None = _first(self.indexes.get("agents"), key)
        return found

    def pool(self, key: PoolKey) -> Mapping[str, Any] | None:
        found: Mapping[str, Any] | None = _first(self.indexes.get("pools"), key)
        return found

    def agents_of_pool(self, key: PoolKey) -> list[AgentKey]:
        # A scan rather than an index of its own: pools are folded at most once a second,
        # while an index is one more handler call on every event of every agent.
        index = self.indexes.get("agents")
        if index is None:
            return []
        namespace, pool = key
        return sorted(
            agent
            for agent, store in index.items()
            if agent[0] == namespace
            and any(((body.get("spec") or {}).get("poolRef") or {}).get("name") == pool
                    for body in store)
        )  # fmt: skip


_META = ("namespace", "name", "uid", "generation", "creationTimestamp")
"""The metadata the reconciler reads (objects.AgentObject, objects.PoolObject)."""


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the reconciler reads of an object, kept by the index for the object's life.

    Spec and status are the raw dictionaries parsed from one watch event, which kopf never
    changes afterwards, so they are kept, not copied (copying every event of a thousand
    agents costs more CPU than the rest of a reconcile). Of the metadata only what is read
    is kept; ``managedFields`` (every writer's field tree) cut down to what ownership reads.
    """
    meta = body.get("metadata") or {}
    slim = {key: meta[key] for key in _META if key in meta}
    managed = status_applies(meta.get("managedFields"))
    if managed is not None:
        slim["managedFields"] = managed
    return {"metadata": slim, "spec": body.get("spec") or {}, "status": body.get("status") or {}}


@dataclass(slots=True)
class OperatorState:
    """What the handlers share; the reconciler is made at startup, once kopf's settings
    (and so its API session) exist."""

    settings: OperatorSettings
    namespaces: Sequence[str] = ()
    """The namespaces (or kopf's patterns) the operator serves; empty = all."""
    resync_seconds: float = RESYNC_SECONDS
    views: KopfViews = field(default_factory=KopfViews)
    reconciler: Reconciler | None = None
    events: EventRecorder | None = None
    events_task: asyncio.Task[None] | None = None
    kube: KubeClient | None = None


class NoDiffBase(kopf.DiffBaseStorage):
    """No "last handled" state at all: the operator has no change handlers to diff for.

    kopf builds a diff base for every event whatever the handlers, by deep-copying the whole
    body (managedFields included); at a thousand agents and their children that copying was
    a tenth of the operator's CPU.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator: our names, quiet posting, no kopf peering."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    # Kubernetes Events only for warnings: routine handling must not cost API writes.
    settings.posting.level = logging.WARNING
    # High availability is a Lease (leader.py), not kopf's peering resources.
    settings.peering.standalone = True
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Deployments are watched through a server-side label selector: only ours, never every
    # Deployment of the cluster.
    settings.watching.label_selectors[DEPLOYMENTS] = OURS


def register(registry: kopf.OperatorRegistry, state: OperatorState) -> None:
    """Register the operator's handlers and indexes on ``registry``."""

    def reconciler(kwargs: Mapping[str, Any]) -> Reconciler:
        state.views.bind(kwargs)
        assert state.reconciler is not None
        return state.reconciler

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster service account, else the kubeconfig, as the one Kubernetes client of
        # the project (kubernetes_asyncio) reads them.
        return await kopf.login_via_async_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings)
        state.kube = await KubeClient.from_environment()
        api = ClusterApi(state.kube)
        state.events = EventRecorder(
            ApiEventSink(api), controller=CONTROLLER, instance=socket.gethostname(),
            per_minute=120,
        )  # fmt: skip
        state.events_task = asyncio.create_task(state.events.run())
        state.reconciler = Reconciler(
            api,
            state.views,
            state.settings,
            namespaces=state.namespaces,
            resync_seconds=state.resync_seconds,
            events=OperatorEvents(state.events),
            gauges=default_gauges(),
        )
        state.reconciler.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if state.reconciler is not None:
            await state.reconciler.close()
        if state.events is not None:
            await state.events.flush(2.0)
            state.events.close()
        if state.events_task is not None:
            await state.events_task
        if state.kube is not None:
            await state.kube.aclose()

    # kopf's callback types take keyword arguments only (``**kwargs``); handlers that name
    # theirs are what kopf documents, hence the ignores.
    @kopf.index(GROUP, VERSION, "llmagents", id="agents", registry=registry)  # type: ignore[arg-type]
    async def agents(
        namespace: str, name: str, body: kopf.Body, **_: Any
    ) -> dict[AgentKey, dict[str, Any]]:
        return {(namespace, name): _snapshot(body)}

    @kopf.index(GROUP, VERSION, "providerpools", id="pools", registry=registry)  # type: ignore[arg-type]
    async def pools(
        namespace: str, name: str, body: kopf.Body, **_: Any
    ) -> dict[PoolKey, dict[str, Any]]:
        return {(namespace, name): _snapshot(body)}

    @kopf.on.event("apps", "v1", "deployments", id="deployment-event", labels=_OURS,
                   registry=registry)  # fmt: skip
    async def deployment_event(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        await reconciler(kwargs).child_changed({**body, "kind": "Deployment"}, type)

    @kopf.on.event(GROUP, VERSION, "llmagents", id="agent-event", registry=registry)  # type: ignore[arg-type]
    async def agent_event(
        type: str | None, namespace: str, name: str, spec: kopf.Spec, **kwargs: Any
    ) -> None:
        if type == "DELETED":
            pool = (spec.get("poolRef") or {}).get("name")
            reconciler(kwargs).agent_gone((namespace, name), pool)
            return
        await reconciler(kwargs).reconcile_agent((namespace, name))

    @kopf.on.event(GROUP, VERSION, "providerpools", id="pool-event", registry=registry)  # type: ignore[arg-type]
    async def pool_event(
        type: str | None, namespace: str, name: str, meta: kopf.Meta, **kwargs: Any
    ) -> None:
        generation = None if type == "DELETED" else int(meta.get("generation") or 0)
        reconciler(kwargs).pool_changed((namespace, name), generation)
