"""API server CPU per write of each kind the operator writes, by the form of the request.

The operator at scale is bound by the API server's CPU (bench/operator_scale.py), so the
question "is this request form cheaper?" needs a number that whole runs, which vary with
the machine's speed by more than most effects, cannot give. Here every variant writes
``--writes`` new objects (or the status of as many LLMAgents), with 8 requests in flight,
and the API server's and etcd's CPU time is read from /proc before and after; the
variants take turns in rounds (order reversed every other round), so that drift in the
machine's speed falls on all of them alike. No controller manager, scheduler or kwok runs.

A variant is ``KIND:FORM[+FORM...]``: KIND is one of ServiceAccount, Role, RoleBinding,
ConfigMap, Service, Deployment (manifests from the operator's builders) or ``status`` (the
operator's half of an LLMAgent status); FORM is ``apply`` (server-side apply as the
operator sends it, fieldValidation=Ignore), ``strict`` (server-side apply with the API
server's default field validation), ``merge`` (status only: a JSON merge patch), and
``token`` adds "as a ServiceAccount bound to the operator's ClusterRole" (default: the
admin certificate, which skips RBAC).

Run: ``.venv/bin/python bench/apiserver_write_cost.py --writes 400 --rounds 4
status:apply status:merge Deployment:apply Deployment:strict``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp
import yaml

from llmagents.operator.builders import children
from llmagents.operator.cluster_api import object_path
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.rbac import operator_cluster_role
from llmagents.operator.settings import OperatorSettings
from tooling._proc import cpu_seconds
from tooling.cluster import Kubectl, LocalCluster

NAMESPACE = "bench"
IN_FLIGHT = 8
AGENT_PATH = f"/apis/llmagents.dev/v1alpha1/namespaces/{NAMESPACE}/llmagents"
POOL = {"metadata": {"name": "pool", "namespace": NAMESPACE, "uid": "u", "generation": 1},
        "spec": {"providers": [{"name": "local", "type": "onnx", "model": "m"}]}}  # fmt: skip
STATUS = {
    "phase": "Pending",
    "observedGeneration": 1,
    "strategy": "priority",
    "conditions": [
        {"type": t, "status": "False", "reason": "RunnerStarting", "message": "",
         "lastTransitionTime": "2030-01-01T00:00:00Z", "observedGeneration": 1}
        for t in ("Ready", "PoolResolved", "ProvidersHealthy", "BudgetAvailable")
    ],
}  # fmt: skip


def agent_body(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "llmagents.dev/v1alpha1",
        "kind": "LLMAgent",
        "metadata": {"name": f"a{i}", "namespace": NAMESPACE},
        "spec": {"poolRef": {"name": "pool"}, "budget": {"limit": 1.0},
                 "work": {"tasks": [{"name": "t1", "prompt": "x"}]}},
    }  # fmt: skip


def child(kind: str, i: int, uid: str) -> dict[str, Any]:
    agent = AgentObject.from_body({**agent_body(i), "metadata": {
        "name": f"a{i}", "namespace": NAMESPACE, "uid": uid, "generation": 1}})  # fmt: skip
    manifests = children(agent, PoolObject.from_body(POOL), OperatorSettings(), replicas=1)
    return next(m for m in manifests if m["kind"] == kind)


class Writer:
    """Sends one variant's requests through a session of the variant's identity."""

    def __init__(self, server: str, sessions: dict[str, aiohttp.ClientSession]) -> None:
        self.server = server
        self.sessions = sessions
        self.slots = asyncio.Semaphore(IN_FLIGHT)

    async def send(self, session: str, method: str, path: str, body: Any, ctype: str) -> Any:
        async with (
            self.slots,
            self.sessions[session].request(
                method, self.server + path, data=json.dumps(body), headers={"Content-Type": ctype}
            ) as response,
        ):
            text = await response.read()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]!r}")
            return json.loads(text)

    async def prepare(self, variant: str, batch: range) -> None:
        """What the writes of ``variant`` need, made before they are measured."""
        if variant.startswith("status:"):
            await asyncio.gather(*(self.send("admin", "POST", AGENT_PATH, agent_body(i),
                                             "application/json") for i in batch))  # fmt: skip
        elif variant.startswith("RoleBinding:"):
            # A RoleBinding by anyone but an admin is checked against its Role.
            await asyncio.gather(*(self.write("Role:apply", i) for i in batch))
        await asyncio.sleep(1.0)

    async def write(self, variant: str, i: int) -> None:
        kind, _, forms = variant.partition(":")
        session = "token" if "token" in forms else "admin"
        query = "fieldManager=llmagents-operator"
        if "strict" not in forms:
            query += "&fieldValidation=Ignore"
        if kind == "status":
            path = f"{AGENT_PATH}/a{i}/status?{query}"
            if "merge" in forms:
                await self.send(session, "PATCH", path, {"status": STATUS},
                                "application/merge-patch+json")  # fmt: skip
                return
            body: dict[str, Any] = {**agent_body(i), "status": STATUS}
            del body["spec"]
        else:
            # The owner need not exist: no garbage collector runs here.
            body = child(kind, i, f"uid-{i}")
            path = object_path(body["apiVersion"], kind, NAMESPACE, body["metadata"]["name"])
            path += f"?{query}"
        await self.send(session, "PATCH", path + "&force=true", body,
                        "application/apply-patch+yaml")  # fmt: skip


def ssl_contexts(kubeconfig: Path, tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, str]:
    config = yaml.safe_load(kubeconfig.read_text())
    user, cluster = config["users"][0]["user"], config["clusters"][0]["cluster"]
    for name, key in (("ca", "certificate-authority-data"), ("crt", "client-certificate-data"),
                      ("key", "client-key-data")):  # fmt: skip
        (tmp / name).write_bytes(base64.b64decode((cluster | user)[key]))
    admin = ssl.create_default_context(cafile=str(tmp / "ca"))
    admin.load_cert_chain(tmp / "crt", tmp / "key")
    return admin, ssl.create_default_context(cafile=str(tmp / "ca")), cluster["server"]


async def measure(args: argparse.Namespace, local: LocalCluster, tmp: Path) -> None:
    kubectl = Kubectl(local.kubectl, local.kubeconfig, NAMESPACE)
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl("create", "namespace", NAMESPACE)
    kubectl.apply(json.dumps(operator_cluster_role("bench-operator")))
    kubectl("create", "serviceaccount", "operator")
    kubectl("create", "clusterrolebinding", "bench-operator", "--clusterrole=bench-operator",
            f"--serviceaccount={NAMESPACE}:operator")  # fmt: skip
    token = kubectl("create", "token", "operator", "--duration=2h").stdout.strip()
    admin, plain, server = ssl_contexts(local.kubeconfig, tmp)
    pids = {line.split()[2]: int(line.split()[0])
            for line in local.pidfile.read_text().splitlines() if len(line.split()) >= 3}  # fmt: skip
    sessions = {
        "admin": aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin)),
        "token": aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=plain),
                                       headers={"Authorization": f"Bearer {token}"}),
    }  # fmt: skip
    try:
        writer = Writer(server, sessions)
        costs: dict[str, list[tuple[float, float]]] = {v: [] for v in args.variants}
        first = 0
        for r in range(args.rounds):
            for variant in args.variants if r % 2 == 0 else args.variants[::-1]:
                batch = range(first, first + args.writes)
                first += args.writes
                await writer.prepare(variant, batch)
                api, etcd = cpu_seconds(pids["kube-apiserver"]), cpu_seconds(pids["etcd"])
                await asyncio.gather(*(writer.write(variant, i) for i in batch))
                await asyncio.sleep(1.0)  # the watch cache and etcd settle into this variant
                costs[variant].append((
                    (cpu_seconds(pids["kube-apiserver"]) - api) / args.writes * 1000,
                    (cpu_seconds(pids["etcd"]) - etcd) / args.writes * 1000,
                ))  # fmt: skip
    finally:
        for session in sessions.values():
            await session.close()
    print(f"CPU ms per write, {args.writes} writes x {args.rounds} rounds, {IN_FLIGHT} in flight"
          " (median [per round]):")  # fmt: skip
    for variant, rounds in costs.items():
        api = [a for a, _ in rounds]
        etcd = [e for _, e in rounds]
        print(f"  {variant:24s} API server {statistics.median(api):5.2f} "
              f"[{' '.join(f'{a:.2f}' for a in api)}]  etcd {statistics.median(etcd):4.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="KIND:FORM[+FORM...], see above.")
    parser.add_argument("--writes", type=int, default=400, help="Writes per variant and round.")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    local = LocalCluster(f"bench-writes-{os.getpid()}", ephemeral=True, die_with_parent=True)
    local.start()
    try:
        for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
            local.stop_component(component)
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(measure(args, local, Path(tmp)))
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
