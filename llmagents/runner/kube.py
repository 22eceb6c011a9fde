"""The runner's few Kubernetes API calls, over one async HTTP client.

The runner reads its ConfigMap and LLMAgent, patches its status and checkpoint, and watches
its ProviderPool: a handful of calls on its hot path's event loop, each with a timeout, so
it never waits on a thread pool or an unbounded request. Credentials come from the
``kubernetes`` package's loaders (in-cluster service account first, then ``KUBECONFIG``,
which is what the process kubelet gives a pod on the test host); only the loaders are
used, requests go through httpx.

API failures are translated once, here, into ``KubeError`` subclasses: ``KubeUnavailable``
for anything worth retrying later (connection refused while the API server is down,
timeouts, 5xx, 429), and one class per answer the caller reacts to.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from llmagents.errors import LLMAgentsError

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
"""Seconds one API request may take (a watch's idle read excepted)."""
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


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
    """The object changed since the resourceVersion the write named."""


class KubeForbidden(KubeError):
    """The runner's ServiceAccount may not do this; the operator's Role for it lacks a rule."""


class KubeInvalid(KubeError):
    """The API server rejected the object (too large, schema violation)."""


def _error(response: httpx.Response, what: str) -> KubeError:
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text[:300]
    status = response.status_code
    text = f"{what}: HTTP {status}: {message}"
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
    """An authenticated async client for one API server."""

    def __init__(
        self,
        server: str,
        *,
        verify: ssl.SSLContext | bool,
        token: Callable[[], str | None] | None = None,
        cert: tuple[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token  # the current "Bearer ..." header; tokens rotate in a real pod
        self.timeout = timeout
        if cert is not None and isinstance(verify, ssl.SSLContext):
            verify.load_cert_chain(*cert)
        self._client = httpx.AsyncClient(
            base_url=self.server,
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    @classmethod
    def from_environment(cls, *, kubeconfig: str | None = None) -> KubeClient:
        """In-cluster credentials when running in a pod, else ``kubeconfig``/``KUBECONFIG``."""
        from kubernetes import client, config

        configuration = client.Configuration()
        if kubeconfig is None:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        cert = None
        if configuration.cert_file and configuration.key_file:
            cert = (configuration.cert_file, configuration.key_file)

        def token() -> str | None:
            settings = configuration.auth_settings().get("BearerToken")
            return settings["value"] if settings else None

        return cls(configuration.host, verify=verify, token=token, cert=cert)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"accept": "application/json"}
        token = self._token() if self._token is not None else None
        if token:
            headers["authorization"] = token
        if content_type:
            headers["content-type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        what = f"{method} {path}"
        content = json.dumps(body).encode() if body is not None else None
        try:
            response = await self._client.request(
                method, path, content=content, params=params,
                headers=self._headers(content_type if body is not None else None),
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise KubeUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None
        if not response.is_success:
            raise _error(response, what)
        return response.json()  # type: ignore[no-any-return]

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch; put ``metadata.resourceVersion`` in it to make it conditional."""
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def apply(self, path: str, body: dict[str, Any], *, field_manager: str) -> dict[str, Any]:
        """Server-side apply ``body`` (JSON is YAML) as ``field_manager``, forcing conflicts."""
        return await self.request(
            "PATCH", path, body=body, content_type=APPLY_PATCH,
            params={"fieldManager": field_manager, "force": "true"},
        )  # fmt: skip

    async def watch(
        self,
        path: str,
        *,
        params: dict[str, str],
        idle_timeout: float,
        metadata_only: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events of a watch (``{"type", "object"}``) until the server ends it.

        ``idle_timeout`` bounds the wait for the next line: the server sends nothing while
        nothing changes, so callers pass ``timeoutSeconds`` a little below it.
        ``metadata_only`` asks for each object's metadata alone (PartialObjectMetadata).
        """
        what = f"WATCH {path}"
        headers = self._headers()
        if metadata_only:
            headers["accept"] = METADATA_ONLY
        try:
            async with self._client.stream(
                "GET", path, params={**params, "watch": "true"}, headers=headers,
                timeout=httpx.Timeout(idle_timeout, connect=min(self.timeout, 5.0)),
            ) as response:  # fmt: skip
                if not response.is_success:
                    await response.aread()
                    raise _error(response, what)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as exc:
            raise KubeUnavailable(f"{what}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self._client.aclose()


def config_map_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def custom_path(group_version: str, namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/{group_version}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
