"""Operator at scale: 1000 LLMAgents applied at once on the local control plane.

Measures, on this machine:

- time from the first create until every agent is reconciled: its Deployment and its
  ``-config`` ConfigMap exist and its status carries a phase (target: 60 s);
- the operator's peak RSS (VmHWM of its process; target: 300 MB);
- the operator's write rate once converged, by its own counter of API writes and, as a
  cross-check, by the API server's request counters for the kinds only the operator
  writes here (target: zero);
- with ``--restart``: each agent's runner then writes a condition of its own to the
  agent's status (as the runner's field manager), the operator is stopped and a new one
  started; its time until it has reconciled every agent again, its peak RSS, and its
  writes from its start until the end of a quiet window (target: zero, as before).

Run: ``.venv/bin/python bench/operator_scale.py [--agents 1000] [--quiet-seconds 30]``
(starts and stops its own ephemeral cluster; ``--kubeconfig`` reuses a running one).
The operator runs as deployed: as its own ServiceAccount with a token, bound to the
ClusterRole the Helm chart grants (``--as-admin`` uses the cluster's admin certificate
instead), with leader election; its Lease renewals (one write per renew interval) are
reported on their own line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmagents.operator.rbac import operator_cluster_role
from tooling._components import free_port
from tooling._proc import cpu_seconds
from tooling.cluster import Kubectl, LocalCluster, kubectl_path

NAMESPACE = "bench"
OPERATOR_KINDS = ("llmagents", "providerpools", "configmaps", "serviceaccounts", "roles",
                  "rolebindings", "services")  # fmt: skip
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE")

POOL = {
    "apiVersion": "llmagents.dev/v1alpha1",
    "kind": "ProviderPool",
    "metadata": {"name": "pool", "namespace": NAMESPACE},
    "spec": {
        "providers": [
            {"name": "claude", "type": "anthropic", "model": "m",
             "secretRef": {"name": "llm-keys", "key": "anthropic"}},
            {"name": "gpt", "type": "openai", "model": "m",
             "secretRef": {"name": "llm-keys", "key": "openai"}},
            {"name": "local", "type": "onnx", "model": "smollm2"},
        ]
    },
}  # fmt: skip


def agent(i: int) -> dict:
    return {
        "apiVersion": "llmagents.dev/v1alpha1",
        "kind": "LLMAgent",
        "metadata": {"name": f"agent-{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "poolRef": {"name": "pool"},
            "budget": {"limit": 1.0},
            "work": {"tasks": [{"name": "t1", "prompt": f"task of agent {i}"}]},
        },
    }


POD_COMPONENTS = ("kube-controller-manager", "kube-scheduler", "kwok")
"""What turns Deployments into (fake) running pods; ``--no-pods`` stops them."""


@contextmanager
def cluster(
    kubeconfig: str | None, *, pods: bool = True
) -> Iterator[tuple[Path, str, dict[str, int]]]:
    """(kubeconfig, kubectl, control-plane pids by component; empty for a given cluster)."""
    if kubeconfig:
        yield Path(kubeconfig), kubectl_path(None), {}
        return
    local = LocalCluster(f"bench-operator-{os.getpid()}", ephemeral=True, die_with_parent=True)
    local.start()
    try:
        if not pods:
            for component in POD_COMPONENTS:
                local.stop_component(component)
        pids = {
            line.split()[2]: int(line.split()[0])
            for line in local.pidfile.read_text().splitlines()
            if len(line.split()) >= 3 and Path(f"/proc/{line.split()[0]}").exists()
        }
        yield local.kubeconfig, local.kubectl, pids
    finally:
        local.stop()


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def operator_writes(port: int) -> float:
    text = _http(f"http://127.0.0.1:{port}/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("llmagents_operator_api_writes_total")
    )


def reconciled_agents(port: int) -> int:
    """How many agents the operator has reconciled (its phase gauge has one series each);
    0 while its /metrics does not answer within 5 s (an operator busy with a restart's
    burst on a loaded machine may not)."""
    try:
        text = _http(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("llmagents_agent_phase{"))


def runner_conditions(kubeconfig: Path, n: int) -> None:
    """Each agent's runner reports a condition of its own (``BackgroundTaskFailed``), by
    server-side apply under the runner's field manager, as a runner that had trouble does."""
    from llmagents.api.status import API_VERSION, RUNNER_FIELD_MANAGER
    from llmagents.kube import KubeClient

    async def report_all() -> None:
        kube = await KubeClient.from_environment(kubeconfig=str(kubeconfig))
        slots = asyncio.Semaphore(16)

        async def report(i: int) -> None:
            name = agent(i)["metadata"]["name"]
            condition = {"type": "BackgroundTaskFailed", "status": "True",
                         "reason": "BackgroundTaskFailed", "lastTransitionTime": _now(),
                         "message": "the status writer failed 1 time(s) and was restarted"}  # fmt: skip
            body = {"apiVersion": API_VERSION, "kind": "LLMAgent",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "status": {"conditions": [condition]}}  # fmt: skip
            path = f"/apis/{API_VERSION}/namespaces/{NAMESPACE}/llmagents/{name}/status"
            async with slots:
                await kube.apply(path, body, field_manager=RUNNER_FIELD_MANAGER)

        try:
            await asyncio.gather(*(report(i) for i in range(n)))
        finally:
            await kube.aclose()

    asyncio.run(report_all())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def start_operator(identity: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(identity)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "llmagents.cli", "operator", "--liveness", str(port),
             "--liveness-host", "127.0.0.1", "--lease-namespace", NAMESPACE],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def wait_leading(operator: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.loads(_http(f"http://127.0.0.1:{port}/readyz")).get("leading"):
                return True
        except OSError:
            pass
        if time.monotonic() > deadline or operator.poll() is not None:
            return False
        time.sleep(0.2)


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def apiserver_writes(
    kubectl: Kubectl, kinds: tuple[str, ...] | None = OPERATOR_KINDS
) -> dict[str, float]:
    """Write requests the API server counted, by resource, for ``kinds`` (None: all)."""
    text = kubectl("get", "--raw", "/metrics", timeout=60).stdout
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") in WRITE_VERBS and (kinds is None or labels.get("resource") in kinds):
            if labels["resource"] == "configmaps" and labels.get("scope") != "resource":
                continue
            key = labels["resource"] + (
                "/" + labels["subresource"] if labels.get("subresource") else ""
            )
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def operator_kubeconfig(kubectl: Kubectl, kubeconfig: Path, out: Path) -> Path:
    """A kubeconfig for the ServiceAccount ``operator`` bound to the operator's ClusterRole,
    as the Helm chart deploys it: RBAC is evaluated for every request (Roles and
    RoleBindings are checked for escalation), and it authenticates with a token."""
    import yaml

    name = f"llmagents-operator-{NAMESPACE}"
    kubectl.apply(json.dumps(operator_cluster_role(name)))
    kubectl("create", "serviceaccount", "operator")
    kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
            f"--serviceaccount={NAMESPACE}:operator")  # fmt: skip
    token = kubectl("create", "token", "operator", "--duration=2h").stdout.strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    out.write_text(json.dumps(config))
    return out


def create_agents(kubeconfig: Path, n: int) -> None:
    """Create ``n`` agents as fast as the API server takes them (kubectl throttles itself)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    # One kept-alive connection per thread: with fewer, each surplus request pays a TLS
    # handshake on both sides.
    configuration.connection_pool_maxsize = 16
    api = client.CustomObjectsApi(client.ApiClient(configuration))

    def create(i: int) -> None:
        api.create_namespaced_custom_object(
            "llmagents.dev", "v1alpha1", NAMESPACE, "llmagents", agent(i)
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(n)))


class Observer:
    """Counts reconciled agents from three watches in a thread of its own.

    Polling lists of thousands of objects every second would cost the API server (and
    kubectl) more CPU than the operator under test; watches cost it almost nothing.
    """

    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = str(kubeconfig)
        self.deployments: set[str] = set()
        self.configs: set[str] = set()
        self.phased: set[str] = set()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def progress(self) -> tuple[int, int, int]:
        """(Deployments, config ConfigMaps, agents with a phase) seen so far."""
        if self.error is not None:
            raise self.error
        return len(self.deployments), len(self.configs), len(self.phased)

    def _run(self) -> None:
        try:
            asyncio.run(self._watch_all())
        except Exception as exc:  # surfaced by progress()
            self.error = exc

    async def _watch_all(self) -> None:
        from llmagents.kube import KubeClient

        kube = await KubeClient.from_environment(kubeconfig=self._kubeconfig)
        ours = {"labelSelector": "app.kubernetes.io/managed-by=llmagents-operator"}

        def deployment(obj: dict) -> None:
            self.deployments.add(obj["metadata"]["name"])

        def config_map(obj: dict) -> None:
            if obj["metadata"]["name"].endswith("-config"):
                self.configs.add(obj["metadata"]["name"])

        def llmagent(obj: dict) -> None:
            if (obj.get("status") or {}).get("phase"):
                self.phased.add(obj["metadata"]["name"])

        # Names are all that is counted of Deployments and ConfigMaps: metadata-only watches
        # keep this process's share of the two cores small.
        await asyncio.gather(
            self._watch(kube, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", ours,
                        deployment, metadata_only=True),
            self._watch(kube, f"/api/v1/namespaces/{NAMESPACE}/configmaps", ours, config_map,
                        metadata_only=True),
            self._watch(kube, f"/apis/llmagents.dev/v1alpha1/namespaces/{NAMESPACE}/llmagents",
                        {}, llmagent),
        )  # fmt: skip

    @staticmethod
    async def _watch(
        kube: Any, path: str, params: dict, seen: Callable[[dict], None], *,
        metadata_only: bool = False,
    ) -> None:  # fmt: skip
        from llmagents.kube import KubeError

        while True:  # the server ends a watch after timeoutSeconds; the process ends this one
            try:
                async for event in kube.watch(
                    path, params=params, timeout_seconds=290, metadata_only=metadata_only
                ):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        seen(event["object"])
            except KubeError:  # e.g. the CRD not served yet: watch again (events re-list)
                await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--quiet-seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--kubeconfig", default=None, help="Use a running cluster.")
    parser.add_argument(
        "--no-pods", action="store_true",
        help="Stop the controller manager, scheduler and kwok: measure the operator with the "
             "API server and etcd alone, without the cluster's own work for each Deployment.",
    )  # fmt: skip
    parser.add_argument(
        "--as-admin", action="store_true",
        help="Run the operator with the cluster's admin certificate (system:masters, which "
             "skips RBAC) instead of a ServiceAccount token and the operator's ClusterRole.",
    )  # fmt: skip
    parser.add_argument(
        "--restart", action="store_true",
        help="Once converged, have every agent's runner report a condition of its own, then "
             "restart the operator and count what the new one writes (target: nothing).",
    )  # fmt: skip
    args = parser.parse_args()

    with (
        cluster(args.kubeconfig, pods=not args.no_pods) as (
            kubeconfig,
            kubectl_exe,
            component_pids,
        ),
        tempfile.TemporaryDirectory() as tmp,
    ):
        kubectl = Kubectl(kubectl_exe, kubeconfig, NAMESPACE)
        kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        kubectl("create", "namespace", NAMESPACE)
        kubectl("create", "secret", "generic", "llm-keys",
                "--from-literal=anthropic=k", "--from-literal=openai=k")  # fmt: skip
        kubectl.apply(json.dumps(POOL))

        port = free_port()
        log = Path(tmp) / "operator.log"
        identity = (
            kubeconfig
            if args.as_admin
            else operator_kubeconfig(kubectl, kubeconfig, Path(tmp) / "operator.kubeconfig")
        )
        operator = start_operator(identity, port, log)
        try:
            if not wait_leading(operator, port, 60):
                print(log.read_text()[-3000:], file=sys.stderr)
                return 1

            # This process too (the creating threads and the watching one): it shares the cores.
            processes = {"operator": operator.pid, **component_pids, "bench": os.getpid()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
            load_before = os.getloadavg()[0]
            observer = Observer(kubeconfig)
            observer.start()
            all_writes_before = apiserver_writes(kubectl, None)
            start = time.monotonic()
            create_agents(kubeconfig, args.agents)
            created = time.monotonic() - start
            progress = (0, 0, 0)
            while progress != (args.agents,) * 3:
                if time.monotonic() - start > args.timeout:
                    print(f"not converged after {args.timeout:.0f} s: {progress}", file=sys.stderr)
                    print(log.read_text()[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.2)
                progress = observer.progress()
            elapsed = time.monotonic() - start
            rss_converged = peak_rss_mb(operator.pid)
            cpu = {n: cpu_seconds(p) - cpu_before[n] for n, p in processes.items()}
            load_after = os.getloadavg()[0]
            all_writes = apiserver_writes(kubectl, None)
            all_writes = {k: v - all_writes_before.get(k, 0.0) for k, v in all_writes.items()}

            # Pool status and late events settle within a few seconds; then count writes.
            time.sleep(5)
            ours_before = operator_writes(port)
            server_before = apiserver_writes(kubectl)
            time.sleep(args.quiet_seconds)
            ours = operator_writes(port) - ours_before
            server_after = apiserver_writes(kubectl)
            server = {k: v - server_before.get(k, 0.0) for k, v in server_after.items()}
            server = {k: v for k, v in server.items() if v}
            leases = Kubectl(kubectl_exe, kubeconfig, NAMESPACE).json(
                "get", "lease", "llmagents-operator"
            )

            print(f"agents:                     {args.agents}")
            print(
                "operator identity:          "
                + ("cluster admin" if args.as_admin else "ServiceAccount, operator ClusterRole")
            )
            print(f"create requests took:       {created:.1f} s")
            print(
                f"all reconciled after:       {elapsed:.1f} s (Deployment, ConfigMap, status phase)"
            )
            print(
                f"load average (1 min):       {load_before:.1f} at start, {load_after:.1f} at end"
            )
            print(
                "CPU seconds until converged: " + ", ".join(f"{n} {s:.0f}" for n, s in cpu.items())
            )
            print(f"API server writes until converged, all clients: {sum(all_writes.values()):.0f} ("
                  + ", ".join(f"{k} {v:.0f}" for k, v in
                              sorted(all_writes.items(), key=lambda kv: -kv[1]) if v)
                  + ")")  # fmt: skip
            print(f"operator peak RSS:          {peak_rss_mb(operator.pid):.0f} MB "
                  f"({rss_converged:.0f} MB at convergence)")  # fmt: skip
            print(
                f"operator writes, {args.quiet_seconds:.0f} s quiet: {ours:.0f} (its own counter)"
            )
            print(f"API server writes to operator kinds in that window: {server or 0}")
            print(f"Lease renewals: every {10:.0f} s (holder {leases['spec']['holderIdentity']})")
            print(f"operator writes in total:   {operator_writes(port):.0f}")
            warnings = [line for line in log.read_text().splitlines()
                        if " WARNING " in line or " ERROR " in line]  # fmt: skip
            print(f"operator log warnings:      {len(warnings)}"
                  + (f" (first: {warnings[0][:300]})" if warnings else ""))  # fmt: skip
            if args.restart:
                operator = restart(args, operator, identity, kubeconfig, kubectl, log)
        finally:
            operator.terminate()
            operator.wait(timeout=30)
    return 0


def restart(
    args: argparse.Namespace,
    operator: subprocess.Popen[bytes],
    identity: Path,
    kubeconfig: Path,
    kubectl: Kubectl,
    log: Path,
) -> subprocess.Popen[bytes]:
    """The ``--restart`` phase; returns the operator process now running."""
    port = free_port()
    old_port = int(operator.args[operator.args.index("--liveness") + 1])  # type: ignore[union-attr]
    before_reports = operator_writes(old_port)
    start = time.monotonic()
    runner_conditions(kubeconfig, args.agents)
    print(f"runner conditions written:  {args.agents} in {time.monotonic() - start:.1f} s")
    time.sleep(5)  # the old operator hears of them: it must write nothing either
    print(f"old operator's writes since: {operator_writes(old_port) - before_reports:.0f}")
    operator.terminate()
    operator.wait(timeout=30)
    server_before = apiserver_writes(kubectl)
    start = time.monotonic()
    operator = start_operator(identity, port, log)
    if not wait_leading(operator, port, 60):
        print(log.read_text()[-3000:], file=sys.stderr)
        return operator
    leading = time.monotonic() - start
    while reconciled_agents(port) < args.agents:
        if time.monotonic() - start > args.timeout:
            print(f"restarted operator: {reconciled_agents(port)} reconciled", file=sys.stderr)
            return operator
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    time.sleep(args.quiet_seconds)
    server_after = apiserver_writes(kubectl)
    server = {k: v - server_before.get(k, 0.0) for k, v in server_after.items()}
    print(f"restarted: leading after {leading:.1f} s, every agent reconciled after "
          f"{elapsed:.1f} s, peak RSS {peak_rss_mb(operator.pid):.0f} MB")  # fmt: skip
    print(f"restarted operator's writes until {args.quiet_seconds:.0f} s later: "
          f"{operator_writes(port):.0f} (its own counter); API server writes to operator "
          f"kinds: {({k: v for k, v in server.items() if v}) or 0}")  # fmt: skip
    return operator


if __name__ == "__main__":
    sys.exit(main())
