"""The process kubelet: run the containers of our image, in pods on kwok nodes, as processes.

kwok takes pods to Running but runs nothing. This utility watches pods scheduled to kwok's
fake nodes and, for each container whose image is ours (by default: the image name
contains ``llmagents``), runs the container's command as a local process, with the pod's
environment, volumes and a service-account kubeconfig for the local API server (see
``_pod`` and ``_podfs`` for the translation). Containers of other images are left to
kwok. It restarts containers as a kubelet does (``restartPolicy``, back-off doubling from
``backoff_initial`` to ``backoff_max``, reset after ten minutes of running), stops them
with SIGTERM, the pod's grace period and SIGKILL when the pod is deleted, and writes each
container's output to ``<state_dir>/<namespace>/<pod>-<uid8>/logs/<container>.log``.

kwok owns pod status, so container state is not written back to the API; it is logged
and available from :meth:`ProcessKubelet.statuses`. Run standalone for the demo with
``python -m llmagents.testing.kubelet --kubeconfig ...``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import shlex
import signal
import sys
import tempfile
import threading
import time
from base64 import b64decode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from llmagents.testing import _proc
from llmagents.testing._pod import ContainerPlan, NotReady, Translation, describe, plan_pod

logger = logging.getLogger(__name__)

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
BACKOFF_RESET_SECONDS = 600.0


def image_contains(text: str) -> Callable[[str], bool]:
    """An image predicate: the image reference contains ``text``."""
    return lambda image: text in image


def default_entrypoints() -> dict[str, list[str]]:
    """Our image's entrypoint ``llmagents`` is this environment's console script."""
    script = Path(sys.executable).parent / "llmagents"
    llmagents = [str(script)] if script.exists() else [sys.executable, "-m", "llmagents.cli"]
    return {"llmagents": llmagents, "python": [sys.executable], "python3": [sys.executable]}


@dataclass
class ContainerStatus:
    """What the process kubelet knows of one container (kwok owns the API's pod status)."""

    namespace: str
    pod: str
    container: str
    log_path: Path
    pid: int | None = None
    running: bool = False
    restart_count: int = 0
    exit_codes: list[int] = field(default_factory=list)


class _ApiSource:
    """The pod's ConfigMaps, Secrets and tokens, read from the API server."""

    def __init__(self, api: client.CoreV1Api) -> None:
        self.api = api

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            cm = self.api.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        data.update({k: b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return data

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            secret = self.api.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: b64decode(v) for k, v in (secret.data or {}).items()}

    def token(
        self, namespace: str, service_account: str, *, audience: str | None,
        expiration: int, pod_name: str, pod_uid: str,
    ) -> str:  # fmt: skip
        body = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=expiration,
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=pod_name, uid=pod_uid
                ),
            )
        )
        try:
            resp = self.api.create_namespaced_service_account_token(service_account, namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                raise NotReady(f"ServiceAccount {service_account}") from None
            raise
        return str(resp.status.token)


class _Container:
    """Runs one container's process and restarts it as the kubelet would."""

    def __init__(self, plan: ContainerPlan, status: ContainerStatus, *, restart: str,
                 kubelet: ProcessKubelet) -> None:  # fmt: skip
        self.plan = plan
        self.status = status
        self.restart = restart  # Always | OnFailure | Never
        self.kubelet = kubelet
        self.stopping = threading.Event()
        self.proc: Any = None
        self.done = threading.Event()  # set when the container will not run again
        self.thread = threading.Thread(
            target=self._run, name=f"container-{status.pod}/{plan.name}", daemon=True
        )

    def _run(self) -> None:
        backoff = self.kubelet.backoff_initial
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                with open(self.status.log_path, "ab") as log:
                    log.write(f"--- start {self.status.restart_count}: {describe(self.plan)}\n".encode())
                self.proc = _proc.spawn(
                    self.plan.argv, log_path=self.status.log_path, env=self.plan.env,
                    cwd=self.plan.cwd, die_with_parent=self.kubelet.die_with_parent,
                )  # fmt: skip
                self.status.pid, self.status.running = self.proc.pid, True
                if self.stopping.is_set():  # stop() ran while we were spawning
                    _proc.terminate_group(self.proc.pid, grace=0.0, proc=self.proc)
                    return
                logger.info("started %s/%s %s (pid %d)", self.status.namespace,
                            self.status.pod, self.plan.name, self.proc.pid)  # fmt: skip
                code = self.proc.wait()
                self.status.running = False
                self.status.exit_codes.append(code)
                if self.stopping.is_set():
                    return
                logger.info("%s/%s %s exited with %d", self.status.namespace,
                            self.status.pod, self.plan.name, code)  # fmt: skip
                if self.restart == "Never" or (self.restart == "OnFailure" and code == 0):
                    return
                if time.monotonic() - started > BACKOFF_RESET_SECONDS:
                    backoff = self.kubelet.backoff_initial
                if self.stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, self.kubelet.backoff_max)
                self.status.restart_count += 1
        finally:
            self.done.set()

    def stop(self, grace: float) -> None:
        self.stopping.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _proc.terminate_group(proc.pid, grace=grace, proc=proc)
        self.status.running = False


class _Pod:
    """One pod's containers of our image, from planning to stopping."""

    def __init__(self, pod: dict[str, Any], pod_ip: str, kubelet: ProcessKubelet) -> None:
        meta = pod["metadata"]
        self.pod = pod
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.pod_ip = pod_ip
        self.kubelet = kubelet
        self.dir = kubelet.state_dir / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        self.containers: list[_Container] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.key}", daemon=True)

    def _run(self) -> None:
        delay = 0.2
        while not self.stopping.is_set():  # ConfigMaps and Secrets may come after the pod
            try:
                plan = plan_pod(self.pod, source=self.kubelet.source, pod_dir=self.dir,
                                pod_ip=self.pod_ip, t=self.kubelet.translation)  # fmt: skip
                break
            except NotReady as exc:
                logger.info("pod %s waits for %s", self.key, exc)
            except Exception:
                logger.exception("pod %s cannot be run here", self.key)
                return
            if self.stopping.wait(delay):
                return
            delay = min(delay * 2, 5.0)
        logger.info("pod %s (ip %s): running %s; left to kwok: %s", self.key, self.pod_ip,
                    [c.name for c in plan.containers], plan.skipped)  # fmt: skip
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for cplan in plan.containers:
            restart = "Always" if cplan.kind == "sidecar" else policy
            if cplan.kind == "init":
                restart = "Never" if policy == "Never" else "OnFailure"
            container = self._start(cplan, restart)
            if cplan.kind == "init":
                container.done.wait()
                if self.stopping.is_set():
                    return
                if not container.status.exit_codes or container.status.exit_codes[-1] != 0:
                    logger.warning("pod %s: init container %s failed", self.key, cplan.name)
                    return

    def _start(self, cplan: ContainerPlan, restart: str) -> _Container:
        status = ContainerStatus(
            namespace=self.pod["metadata"]["namespace"],
            pod=self.pod["metadata"]["name"],
            container=cplan.name,
            log_path=self.dir / "logs" / f"{cplan.name}.log",
        )
        status.log_path.parent.mkdir(parents=True, exist_ok=True)
        container = _Container(cplan, status, restart=restart, kubelet=self.kubelet)
        with self.lock:
            if self.stopping.is_set():
                container.done.set()
                return container
            self.containers.append(container)
            container.thread.start()
        return container

    def stop(self, grace: float) -> None:
        with self.lock:
            self.stopping.set()
            containers = list(self.containers)
        stoppers = [threading.Thread(target=c.stop, args=(grace,), daemon=True) for c in containers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        logger.info("pod %s: stopped %d containers", self.key, len(containers))


class ProcessKubelet:
    """Watches pods (of one namespace, or all) and runs our image's containers locally."""

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        namespace: str | None = None,
        state_dir: Path | None = None,
        matches_image: Callable[[str], bool] = image_contains("llmagents"),
        entrypoints: Mapping[str, Sequence[str]] | None = None,
        image_entrypoint: Sequence[str] = ("llmagents",),
        image_cmd: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
        max_stop_grace: float | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.namespace = namespace
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="llmagents-kubelet-"))
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_stop_grace = max_stop_grace
        self.die_with_parent = die_with_parent
        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._watch_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.api = client.CoreV1Api(self._api_client)
        self.source = _ApiSource(self.api)
        cfg = self._api_client.configuration
        self.translation = Translation(
            matches_image=matches_image,
            image_entrypoint=list(image_entrypoint),
            image_cmd=list(image_cmd),
            entrypoints=dict(entrypoints or default_entrypoints()),
            server=cfg.host,
            ca_pem=Path(cfg.ssl_ca_cert).read_bytes() if cfg.ssl_ca_cert else b"",
            extra_env=dict(extra_env or {}),
        )
        self._pods: dict[str, _Pod] = {}  # by uid
        self._fake_nodes: dict[str, bool] = {}
        self._next_ip = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._loop, name="process-kubelet", daemon=True)

    # -- public ------------------------------------------------------------------------------
    def start(self) -> ProcessKubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and stop every container (SIGTERM, grace, SIGKILL)."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        # Closing the watch's connections wakes its blocked read at once.
        self._watch_client.rest_client.pool_manager.clear()
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
        stoppers = [threading.Thread(target=self._stop_pod, args=(p, None)) for p in pods]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        self._thread.join(timeout=10)
        self._api_client.close()
        self._watch_client.close()

    def __enter__(self) -> ProcessKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def statuses(self, namespace: str | None = None) -> list[ContainerStatus]:
        """Every container this kubelet runs or ran since its pod appeared (not yet deleted)."""
        with self._lock:
            pods = list(self._pods.values())
        return [
            c.status
            for p in pods
            for c in list(p.containers)
            if namespace is None or c.status.namespace == namespace
        ]

    def wait_for(
        self,
        predicate: Callable[[ContainerStatus], bool],
        *,
        timeout: float = 30.0,
        namespace: str | None = None,
    ) -> ContainerStatus:
        """Poll until some container's status satisfies ``predicate``; raise at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for status in self.statuses(namespace):
                if predicate(status):
                    return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"no container matched within {timeout} s: {self.statuses()}")
            time.sleep(0.1)

    def pod_dir(self, namespace: str, pod: str) -> Path | None:
        """The local directory of a (current) pod, holding its logs and volumes."""
        with self._lock:
            for p in self._pods.values():
                if p.key == f"{namespace}/{pod}":
                    return p.dir
        return None

    # -- watching --------------------------------------------------------------------------
    def _list_fn(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        api = client.CoreV1Api(self._watch_client)
        if self.namespace:
            return api.list_namespaced_pod, {"namespace": self.namespace}
        return api.list_pod_for_all_namespaces, {}

    def _loop(self) -> None:
        fn, kwargs = self._list_fn()
        while not self._stopping.is_set():
            try:
                listing = fn(**kwargs, _preload_content=False)
                body = json.loads(listing.data)
                version = body["metadata"]["resourceVersion"]
                self._resync(body["items"])
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    fn, **kwargs, resource_version=version, timeout_seconds=60,
                    allow_watch_bookmarks=True,
                ):  # fmt: skip
                    if self._stopping.is_set():
                        return
                    self._handle(event["type"], event["raw_object"])
            except Exception as exc:  # noqa: BLE001 - the loop must outlive API hiccups
                if self._stopping.is_set():
                    return
                logger.warning("pod watch failed (%s); listing again", exc)
                self._stopping.wait(1.0)

    def _resync(self, items: list[dict[str, Any]]) -> None:
        present = {item["metadata"]["uid"] for item in items}
        with self._lock:
            gone = [uid for uid in self._pods if uid not in present]
        for uid in gone:
            self._forget(uid, grace=0.0)
        for item in items:
            self._handle("MODIFIED", item)

    def _handle(self, kind: str, pod: dict[str, Any]) -> None:
        if kind in {"BOOKMARK", "ERROR"}:
            if kind == "ERROR":
                raise RuntimeError(f"watch error: {pod}")
            return
        meta = pod["metadata"]
        uid = meta["uid"]
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            self._forget(uid, grace=float(grace))
            return
        with self._lock:
            if uid in self._pods or self._stopping.is_set():
                return
        if not self._ours(pod):
            return
        pod_ip = self._pod_ip(pod)
        if pod_ip is None:
            return  # kwok assigns the IP as it marks the pod Running; the next event has it
        runner = _Pod(pod, pod_ip, self)
        with self._lock:
            if uid in self._pods or self._stopping.is_set():
                return
            self._pods[uid] = runner
        runner.thread.start()

    def _ours(self, pod: dict[str, Any]) -> bool:
        spec = pod["spec"]
        node = spec.get("nodeName")
        if not node or pod.get("status", {}).get("phase") in {"Succeeded", "Failed"}:
            return False
        containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
        if not any(self.translation.matches_image(c.get("image", "")) for c in containers):
            return False
        if node not in self._fake_nodes:
            try:
                n = self.api.read_node(node)
                self._fake_nodes[node] = (n.metadata.annotations or {}).get(
                    FAKE_NODE_ANNOTATION
                ) == "fake"
            except ApiException:
                return False
        return self._fake_nodes[node]

    def _pod_ip(self, pod: dict[str, Any]) -> str | None:
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            return None
        if ipaddress.ip_address(ip).is_loopback:
            return str(ip)
        # A cluster whose pod IPs are real addresses: never dial them, use our own.
        with self._lock:
            n = self._next_ip
            self._next_ip += 1
        return f"127.254.{n // 250}.{n % 250 + 1}"

    def _forget(self, uid: str, *, grace: float) -> None:
        with self._lock:
            runner = self._pods.pop(uid, None)
        if runner is not None:
            threading.Thread(target=self._stop_pod, args=(runner, grace), daemon=True).start()

    def _stop_pod(self, runner: _Pod, grace: float | None) -> None:
        if grace is None:
            grace = float(runner.pod["spec"].get("terminationGracePeriodSeconds", 30))
        if self.max_stop_grace is not None:
            grace = min(grace, self.max_stop_grace)
        runner.stop(grace)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmagents.testing.kubelet", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default=None, help="Watch one namespace (default all).")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--image-contains", default="llmagents")
    parser.add_argument(
        "--entrypoint", action="append", default=[], metavar="NAME=COMMAND",
        help="Map a container command word to a local command (repeatable).",
    )  # fmt: skip
    parser.add_argument("--backoff", type=float, default=10.0, help="First restart delay (s).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    entrypoints = default_entrypoints()
    for item in args.entrypoint:
        name, _, command = item.partition("=")
        entrypoints[name] = shlex.split(command)
    kubelet = ProcessKubelet(
        args.kubeconfig, namespace=args.namespace, state_dir=args.state_dir,
        matches_image=image_contains(args.image_contains), entrypoints=entrypoints,
        backoff_initial=args.backoff,
    )  # fmt: skip
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    kubelet.start()
    logger.info("process kubelet running; logs under %s", kubelet.state_dir)
    done.wait()
    kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
