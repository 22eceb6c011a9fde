"""The operator's few API calls: server-side apply, label-selected lists of its children, and
reading a Secret's key names (with a verdict on each value as an API key).

kopf has no server-side apply, so the operator sends it through kopf's own authenticated
request function: the same credentials, session, re-login and retry/backoff on 5xx and 429
as kopf's watches. That function is kopf-internal (``kopf._cogs``); this module is the
only place that touches it, so a kopf upgrade that moves it breaks here and nowhere else.

Every write is counted (``llmagents_operator_api_writes_total``): a converged operator
must write nothing, and the benchmark reads that counter.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import kopf
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors as kopf_errors
from prometheus_client import Counter

from llmagents.api.status import OPERATOR_FIELD_MANAGER
from llmagents.events import EventGone
from llmagents.keys import secret_value_problem

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
# The operator sends only what its builders and models made, and reads no warnings: the API
# server's check for unknown or duplicate fields (a second, strict parse of every body) is
# work for nothing.
_WRITE_QUERY = f"fieldManager={OPERATOR_FIELD_MANAGER}&fieldValidation=Ignore"


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
        self, api_version: str, kind: str, *, namespace: str | None, labels: str
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Objects of ``kind`` matching the label selector, page by page."""
        ...

    async def secret_keys(self, namespace: str, name: str) -> dict[str, str | None] | None:
        """The data keys of a Secret, each with what is wrong with its value as an API key
        (None: nothing; see ``secret_key_problems``), or None when it does not exist."""
        ...


class KopfApi:
    """``Api`` over kopf's authenticated session; usable only inside a running operator."""

    def __init__(self, settings: kopf.OperatorSettings, *, concurrency: int = 32) -> None:
        self._settings = settings
        # kopf's connection pool is unbounded; a burst of thousands of agents must queue
        # here rather than flood the API server into 429s.
        self._slots = asyncio.Semaphore(concurrency)

    async def apply(self, manifest: dict[str, Any], *, subresource: str | None = None) -> None:
        meta = manifest["metadata"]
        path = object_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        if subresource:
            path += f"/{subresource}"
        url = f"{path}?{_WRITE_QUERY}&force=true"
        async with self._slots:
            WRITES.labels(manifest["kind"], subresource or "").inc()
            response = await kopf_api.request(
                "patch",
                url,
                payload=manifest,  # JSON is YAML, which apply-patch+yaml accepts
                headers={"Content-Type": "application/apply-patch+yaml"},
                settings=self._settings,
                logger=logger,
            )
            # Read to the end: aiohttp closes a connection whose body was left unread, and
            # a new TLS handshake per write cost both sides more than the body does.
            await response.read()

    async def list(
        self, api_version: str, kind: str, *, namespace: str | None, labels: str
    ) -> AsyncIterator[list[dict[str, Any]]]:
        query = {"labelSelector": labels, "limit": str(_LIST_PAGE)}
        path = collection_path(api_version, kind, namespace)
        while True:
            async with self._slots:
                body = await kopf_api.get(
                    f"{path}?{urlencode(query)}", settings=self._settings, logger=logger
                )
            yield body.get("items") or []
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = token

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        """POST an ``events.k8s.io/v1`` Event."""
        async with self._slots:
            WRITES.labels("Event", "").inc()
            response = await kopf_api.request(
                "post", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
                payload=body, settings=self._settings, logger=logger,
            )  # fmt: skip
            await response.read()

    async def patch_event(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch an Event (its series); ``EventGone`` when it expired."""
        async with self._slots:
            WRITES.labels("Event", "").inc()
            try:
                response = await kopf_api.request(
                    "patch", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}",
                    payload=patch, headers={"Content-Type": "application/merge-patch+json"},
                    settings=self._settings, logger=logger,
                )  # fmt: skip
            except kopf_errors.APINotFoundError:
                raise EventGone(name) from None
            await response.read()

    async def secret_keys(self, namespace: str, name: str) -> dict[str, str | None] | None:
        async with self._slots:
            try:
                body = await kopf_api.get(
                    object_path("v1", "Secret", namespace, name),
                    settings=self._settings,
                    logger=logger,
                )
            except kopf_errors.APINotFoundError:
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


class KopfEventSink:
    """``llmagents.events.EventSink`` over ``KopfApi``."""

    def __init__(self, api: KopfApi) -> None:
        self.api = api

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        await self.api.create_event(namespace, body)

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.api.patch_event(namespace, name, patch)
