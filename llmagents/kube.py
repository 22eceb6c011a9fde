"""The one Kubernetes API client of llmagents: kubernetes_asyncio, the asyncio edition of the
official client.

The runner (its ConfigMap, LLMAgent status, checkpoint and results, the pool watch, events),
the operator's own calls (server-side apply, label-selected lists; kopf does the watching)
and leader election all go through ``KubeClient``: credentials from the library's loaders
(in-cluster service account first, then ``KUBECONFIG``), requests through its ``ApiClient``,
watches through its ``Watch`` (bookmarks and resourceVersion resume), every request bounded
by a timeout.

The callers name objects by API path (``config_map_path``, ``custom_path``): they handle
custom resources as plain dictionaries, and a typed method per kind would only convert them
back and forth. Failures are translated once, here, from the library's ``ApiException`` into
``KubeError`` subclasses: ``KubeUnavailable`` for anything worth retrying later (connection
refused while the API server is down, timeouts, 5xx, 429), one class per answer a caller
reacts to.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp

from llmagents.errors import LLMAgentsError

if TYPE_CHECKING:
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio.client.exceptions import ApiException

# kubernetes_asyncio (its generated models: about 0.4 s of import) is imported where a
# client is made or used, not here: a local run with file stores (``llmagents run``) imports
# the runner's stores, which name this module, and never talks to an API server.

logger = logging.getLogger(__name__)
# The library logs every answer's body at DEBUG, a Secret's values included (the operator
# reads Secrets for their key names): never, whatever level the process logs at.
logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)

REQUEST_TIMEOUT = 10.0
"""Seconds one API request may take (a watch's idle read excepted)."""
MERGE_PATCH = "application/merge-patch+json"
_AS_PARSED = {200: "object", 201: "object"}
"""The library's response type that leaves JSON as parsed (no model classes)."""
APPLY_PATCH = "application/apply-patch+yaml"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
"""What a LIST accepts to receive each item's metadata alone (kind, apiVersion, metadata)."""


class KubeError(LLMAgentsError):
    """A Kubernetes API request failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeUnavailable(KubeError):
    """The API server could not be reached or asked to come back later; retry."""


class KubeNotFound(KubeError):
    """The object does not exist."""


class KubeConflict(KubeError):
    """The object changed since the resourceVersion the write named, or already exists."""


class KubeForbidden(KubeError):
    """The ServiceAccount may not do this; its Role lacks a rule."""


class KubeInvalid(KubeError):
    """The API server rejected the object (too large, schema violation)."""


def _error(exc: ApiException, what: str) -> KubeError:
    status = exc.status or None
    message = exc.reason or ""
    try:
        message = str(json.loads(exc.body or "").get("message", message))
    except (TypeError, ValueError, AttributeError):
        pass
    text = f"{what}: HTTP {status}: {message}" if status else f"{what}: {message}"
    if status == 404:
        return KubeNotFound(text, status=status)
    if status == 409:
        return KubeConflict(text, status=status)
    if status in (401, 403):
        return KubeForbidden(text, status=status)
    if status in (400, 413, 422):
        return KubeInvalid(text, status=status)
    return KubeUnavailable(text, status=status)


class KubeClient:
    """An authenticated async client for one API server; close with ``aclose()``."""

    def __init__(self, api: k8s.ApiClient, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.api = api
        self.timeout = timeout

    @classmethod
    async def from_environment(
        cls, *, kubeconfig: str | None = None, timeout: float = REQUEST_TIMEOUT
    ) -> KubeClient:
        """In-cluster credentials when running in a pod, else ``kubeconfig``/``KUBECONFIG``."""
        from kubernetes_asyncio import client as k8s
        from kubernetes_asyncio import config as k8s_config

        configuration = k8s.Configuration()
        if kubeconfig is None:
            try:
                k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except k8s_config.ConfigException:
                await k8s_config.load_kube_config(client_configuration=configuration)
        else:
            await k8s_config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        return cls(k8s.ApiClient(configuration), timeout=timeout)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the answer's JSON. ``timeout`` (default: the client's) bounds it all;
        ``accept`` may ask for a JSON form of the answer such as ``METADATA_LIST``."""
        from kubernetes_asyncio.client.exceptions import ApiException

        what = f"{method} {path}"
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            answer = await self.api.call_api(
                path, method, query_params=list((params or {}).items()), header_params=headers,
                body=body,
                auth_settings=["BearerToken"], response_types_map=_AS_PARSED,
                _return_http_data_only=True, _request_timeout=timeout or self.timeout,
            )  # fmt: skip
        except ApiException as exc:
            raise _error(exc, what) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
        return self._document(answer, what)

    @staticmethod
    def _document(answer: Any, what: str) -> dict[str, Any]:
        if not isinstance(answer, dict):  # the "object" type leaves JSON as parsed, else text
            raise KubeUnavailable(f"{what}: the answer is not a JSON object")
        return answer

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch; put ``metadata.resourceVersion`` in it to make it conditional."""
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def apply(
        self, path: str, body: dict[str, Any], *, field_manager: str, validate: bool = True
    ) -> dict[str, Any]:
        """Server-side apply ``body`` (JSON is YAML) as ``field_manager``, forcing conflicts.
        ``validate=False`` skips the API server's strict second parse of the body."""
        params = {"fieldManager": field_manager, "force": "true"}
        if not validate:
            params["fieldValidation"] = "Ignore"
        return await self.request("PATCH", path, body=body, content_type=APPLY_PATCH,
                                  params=params)  # fmt: skip

    async def watch(
        self,
        path: str,
        *,
        params: dict[str, str],
        timeout_seconds: int,
        resource_version: str | None = None,
        metadata_only: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events (``{"type", "object"}``) of a watch of the collection at ``path``, from
        ``resource_version`` when given, with bookmarks, until the server ends it after
        ``timeout_seconds``. An expired resourceVersion is a ``KubeError`` with status 410
        (list again). ``metadata_only`` asks for each object's metadata alone."""
        from kubernetes_asyncio.client.exceptions import ApiException
        from kubernetes_asyncio.watch import Watch

        what = f"WATCH {path}"
        accept = METADATA_ONLY if metadata_only else "application/json"
        # The server ends the watch at timeout_seconds; a read may wait about that long.
        read_timeout = aiohttp.ClientTimeout(sock_connect=self.timeout,
                                             sock_read=timeout_seconds + 30)  # fmt: skip

        async def open_watch(**options: Any) -> Any:
            # What the library's ``Watch`` calls, with watch=True, _preload_content=False
            # and, on a resume, the last resourceVersion it saw (a bookmark's included).
            query = {**params, "watch": "true", "allowWatchBookmarks": "true",
                     "timeoutSeconds": str(timeout_seconds)}  # fmt: skip
            if options.get("resource_version"):
                query["resourceVersion"] = options["resource_version"]
            return await self.api.call_api(
                path, "GET", query_params=list(query.items()), header_params={"Accept": accept},
                auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=read_timeout,
            )  # fmt: skip

        try:
            async with Watch(return_type="object") as watch:
                arguments: dict[str, Any] = {"timeout_seconds": timeout_seconds}
                if resource_version:
                    arguments["resource_version"] = resource_version
                async for event in watch.stream(open_watch, **arguments):
                    yield {"type": event["type"], "object": event["raw_object"]}
        except ApiException as exc:
            raise _error(exc, what) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self.api.close()


def config_map_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def custom_path(group_version: str, namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/{group_version}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


async def bounded(call: Any, seconds: float) -> Any:
    """``await call`` within ``seconds``: ``KubeUnavailable`` when it takes longer."""
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        raise KubeUnavailable(f"no answer from the API server within {seconds:g}s") from None
