"""The operator's few API calls: server-side apply, label-selected lists of its children,
reading a Secret's key names (with a verdict on each value as an API key), and its Events.

kopf watches; everything the operator writes or lists itself goes through the project's one
Kubernetes client (``llmagents.kube``, kubernetes_asyncio), with at most ``concurrency``
requests in flight so that a burst of thousands of agents queues here rather than flooding
the API server into 429s. A failed request raises ``KubeError``; the reconciler retries.

Every write is counted (``llmagents_operator_api_writes_total``): a converged operator
must write nothing, and the benchmark reads that counter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from prometheus_client import Counter

from llmagents.api.status import OPERATOR_FIELD_MANAGER
from llmagents.events import EventExists, EventGone
from llmagents.keys import secret_value_problem
from llmagents.kube import MERGE_PATCH, METADATA_LIST, KubeClient, KubeConflict, KubeNotFound

logger = logging.getLogger(__name__)

WRITES = Counter(
    "llmagents_operator_api_writes",
    "Write requests the operator sent to the API server.",
    ["kind", "subresource"],
)

_PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Deployment": "deployments",
    "LLMAgent": "llmagents",
    "ProviderPool": "providerpools",
}

_LIST_PAGE = 500
_CHILD_PAGE = 250
"""Children listed per request: a page of whole Deployments is a few MB of JSON, and the
operator holds one page per kind at a time, parsed, beside the raw answer."""


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """The API path of a kind's objects in ``namespace``, or in all namespaces (None)."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace is not None else ""
    return f"{root}{scope}/{_PLURALS[kind]}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """The API path of a namespaced object."""
    return f"{collection_path(api_version, kind, namespace)}/{name}"


class Api(Protocol):
    """What the reconciler needs from the API server."""

    async def apply(self, manifest: dict[str, Any], *, subresource: str | None = None) -> None:
        """Server-side apply ``manifest`` as the operator's field manager, taking over
        conflicting fields."""
        ...

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None,
        labels: str,
        metadata_only: bool = False,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Objects of ``kind`` matching the label selector, page by page; with
        ``metadata_only``, each item's ``metadata`` alone."""
        ...

    async def secret_keys(self, namespace: str, name: str) -> dict[str, str | None] | None:
        """The data keys of a Secret, each with what is wrong with its value as an API key
        (None: nothing; see ``secret_key_problems``), or None when it does not exist."""
        ...


class ClusterApi:
    """``Api`` over the project's Kubernetes client."""

    def __init__(self, kube: KubeClient, *, concurrency: int = 32) -> None:
        self.kube = kube
        self._slots = asyncio.Semaphore(concurrency)

    async def apply(self, manifest: dict[str, Any], *, subresource: str | None = None) -> None:
        meta = manifest["metadata"]
        path = object_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        if subresource:
            path += f"/{subresource}"
        async with self._slots:
            WRITES.labels(manifest["kind"], subresource or "").inc()
            # The operator sends only what its builders and models made, and reads no
            # warnings: the API server's strict second parse of every body is work for nothing.
            await self.kube.apply(path, manifest, field_manager=OPERATOR_FIELD_MANAGER,
                                  validate=False)  # fmt: skip

    async def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None,
        labels: str,
        metadata_only: bool = False,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        query = {"labelSelector": labels, "limit": str(_CHILD_PAGE)}
        path = collection_path(api_version, kind, namespace)
        accept = METADATA_LIST if metadata_only else "application/json"
        while True:
            async with self._slots:
                body = await self.kube.request("GET", path, params=query, accept=accept)
            items = body.get("items") or []
            token = (body.get("metadata") or {}).get("continue")
            del body
            yield items
            del items  # not kept alive while the next page is fetched
            if not token:
                return
            query["continue"] = token

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        """POST an ``events.k8s.io/v1`` Event; ``EventExists`` when its name is taken."""
        async with self._slots:
            WRITES.labels("Event", "").inc()
            try:
                await self.kube.request(
                    "POST", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", body=body
                )
            except KubeConflict:
                raise EventExists(body["metadata"]["name"]) from None

    async def list_events(
        self, namespace: str, field_selector: str
    ) -> builtins.list[dict[str, Any]]:  # ``list`` is a method here
        """The ``events.k8s.io/v1`` Events of ``namespace`` the selector matches (one page
        of at most 500: an object has far fewer series than that)."""
        async with self._slots:
            body = await self.kube.request(
                "GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
                params={"fieldSelector": field_selector, "limit": str(_LIST_PAGE)},
            )  # fmt: skip
        return list(body.get("items") or [])

    async def patch_event(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch an Event (its series); ``EventGone`` when it expired."""
        async with self._slots:
            WRITES.labels("Event", "").inc()
            try:
                await self.kube.request(
                    "PATCH", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}",
                    body=patch, content_type=MERGE_PATCH,
                )  # fmt: skip
            except KubeNotFound:
                raise EventGone(name) from None

    async def secret_keys(self, namespace: str, name: str) -> dict[str, str | None] | None:
        async with self._slots:
            try:
                body = await self.kube.get(object_path("v1", "Secret", namespace, name))
            except KubeNotFound:
                return None
        return secret_key_problems(body)


def secret_key_problems(secret: Mapping[str, Any]) -> dict[str, str | None]:
    """Each data key of a Secret with what is wrong with its value as an API key, or None.

    The values are decoded, judged (``llmagents.keys``) and dropped here: nothing above this
    function ever holds one, and the verdicts name a character's code point and position,
    never the value.
    """
    problems: dict[str, str | None] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            value = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            problems[key] = "is not valid base64"
            continue
        problems[key] = secret_value_problem(value)
    return problems


class ApiEventSink:
    """``llmagents.events.EventSink`` over ``ClusterApi``."""

    def __init__(self, api: ClusterApi) -> None:
        self.api = api

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        await self.api.create_event(namespace, body)

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.api.patch_event(namespace, name, patch)

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        return await self.api.list_events(namespace, field_selector)
