"""Running one pod's containers as processes: the process kubelet's per-pod machinery.

``PodRunner`` plans the pod (``_pod.plan_pod``), waiting while a ConfigMap, Secret or service
account it needs does not exist yet, then starts init containers one by one, native
sidecars, and the main containers. ``Container`` runs one process and restarts it by
the pod's ``restartPolicy`` with the kubelet's doubling back-off. ``ApiSource`` reads the
objects a pod refers to from the API server.
"""

from __future__ import annotations

import logging
import threading
import time
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tooling import _proc
from tooling._pod import (
    ContainerPlan,
    NotReady,
    ObjectSource,
    Translation,
    describe,
    plan_pod,
)

logger = logging.getLogger(__name__)

BACKOFF_RESET_SECONDS = 600.0


class Host(Protocol):
    """What a pod's runner needs from the kubelet that owns it."""

    backoff_initial: float
    backoff_max: float
    die_with_parent: bool
    state_dir: Path
    source: ObjectSource
    translation: Translation


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


class ApiSource:
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
            resp = self.api.create_namespaced_service_account_token(
                service_account, namespace, body
            )
        except ApiException as exc:
            if exc.status == 404:
                raise NotReady(f"ServiceAccount {service_account}") from None
            raise
        return str(resp.status.token)


class Container:
    """Runs one container's process and restarts it as the kubelet would."""

    def __init__(self, plan: ContainerPlan, status: ContainerStatus, *, restart: str,
                 kubelet: Host) -> None:  # fmt: skip
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
                    log.write(
                        f"--- start {self.status.restart_count}: {describe(self.plan)}\n".encode()
                    )
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


class PodRunner:
    """One pod's containers of our image, from planning to stopping."""

    def __init__(self, pod: dict[str, Any], pod_ip: str, kubelet: Host) -> None:
        meta = pod["metadata"]
        self.pod = pod
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.pod_ip = pod_ip
        self.kubelet = kubelet
        self.dir = kubelet.state_dir / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        self.containers: list[Container] = []
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

    def _start(self, cplan: ContainerPlan, restart: str) -> Container:
        status = ContainerStatus(
            namespace=self.pod["metadata"]["namespace"],
            pod=self.pod["metadata"]["name"],
            container=cplan.name,
            log_path=self.dir / "logs" / f"{cplan.name}.log",
        )
        status.log_path.parent.mkdir(parents=True, exist_ok=True)
        container = Container(cplan, status, restart=restart, kubelet=self.kubelet)
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
