"""The local control plane reached before any client library: the admin's requests to the
API server with the cluster's own CA, and the components' health endpoints.

Standard library only (``urllib``), like the rest of ``tooling.cluster``, so that
``hack/cluster-up.sh`` runs on any ``python3``. ``LocalCluster`` uses it to wait for each
component while it starts one and to register kwok's node.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from tooling._components import NODE_NAME, node_manifest
from tooling._pki import Pki


class AdminApi:
    """The API server at ``server``, as the cluster's admin (``O=system:masters``)."""

    def __init__(self, server: str, pki: Pki) -> None:
        self.server = server
        self.pki = pki

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        admin = self.pki.client("admin")
        ctx.load_cert_chain(str(admin.cert), str(admin.key))
        return ctx

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10,
        content_type: str = "application/json",
    ) -> Any:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Content-Type": content_type} if data else {},
        )  # fmt: skip
        with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as resp:
            raw = resp.read()
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode()

    def get(self, path: str, timeout: float = 5) -> Any:
        """GET ``path``; ``None`` when the server does not answer or answers with an error."""
        try:
            return self.request("GET", path, timeout=timeout)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return None

    def answers(self) -> bool:
        """The API server answers HTTP at all (``/readyz`` may still say 500)."""
        try:
            self.request("GET", "/readyz", timeout=2)
        except urllib.error.HTTPError:
            return True
        return True

    def create_node(self) -> None:
        """Register kwok's node, schedulable at once."""
        self.request("POST", "/api/v1/nodes", node_manifest())
        # Admission taints every new node not-ready; the node-lifecycle controller would
        # lift it once the node reports Ready. kwok reports Ready at once and that
        # controller (which needs kubelet heartbeats) does not run here, so lift it now.
        self.request(
            "PATCH", f"/api/v1/nodes/{NODE_NAME}", {"spec": {"taints": None}},
            content_type="application/merge-patch+json",
        )  # fmt: skip

    def node_ready(self) -> bool:
        node = self.get(f"/api/v1/nodes/{NODE_NAME}")
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def default_sa_exists(self) -> bool:
        return self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None


def etcd_healthy(port: int) -> bool:
    """etcd's ``/health`` on its client port says healthy."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
        return bool(json.loads(resp.read()).get("health") == "true")


def healthz(port: int) -> bool:
    """A component's ``/healthz`` on loopback answers 200."""
    # The components serve a self-signed certificate; the port is ours on loopback.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=2) as r:
        return r.status == 200
