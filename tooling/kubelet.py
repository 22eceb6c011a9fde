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
``python -m tooling.kubelet --kubeconfig ...``.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tooling._pod import Translation
from tooling._podrun import ApiSource, ContainerStatus, PodRunner
from tooling.polling import eventually

logger = logging.getLogger(__name__)

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def image_contains(text: str) -> Callable[[str], bool]:
    """An image predicate: the image reference contains ``text``."""
    return lambda image: text in image


OUR_IMAGE = image_contains("llmagents")


def default_entrypoints() -> dict[str, list[str]]:
    """Our image's entrypoint ``llmagents`` is this environment's console script."""
    script = Path(sys.executable).parent / "llmagents"
    llmagents = [str(script)] if script.exists() else [sys.executable, "-m", "llmagents.cli"]
    return {"llmagents": llmagents, "python": [sys.executable], "python3": [sys.executable]}


class ProcessKubelet:
    """Watches pods (of one namespace, or all) and runs our image's containers locally."""

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        namespace: str | None = None,
        state_dir: Path | None = None,
        matches_image: Callable[[str], bool] = OUR_IMAGE,
        entrypoints: Mapping[str, Sequence[str]] | None = None,
        image_entrypoint: Sequence[str] = ("llmagents",),
        image_cmd: Sequence[str] = ("--help",),
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
        self.source = ApiSource(self.api)
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
        self._pods: dict[str, PodRunner] = {}  # by uid
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

    def __enter__(self) -> Self:
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
        """Poll until some container's status satisfies ``predicate``; ``NotReached`` at the
        deadline."""
        return eventually(
            lambda: next((s for s in self.statuses(namespace) if predicate(s)), None),
            timeout=timeout,
            every=0.1,
            what="a container that matches",
            details=lambda: f"containers: {self.statuses()}",
        )

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
            except Exception as exc:
                if self._stopping.is_set():
                    return
                logger.warning("pod watch failed (%s); listing again", exc)
                self._stopping.wait(1.0)

    def _resync(self, items: list[dict[str, Any]]) -> None:
        present = {item["metadata"]["uid"] for item in items}
        with self._lock:
            gone = [uid for uid in self._pods if uid not in present]
        for uid in gone:
            self._forget(uid, grace=None)
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
        runner = PodRunner(pod, pod_ip, self)
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

    def _forget(self, uid: str, *, grace: float | None) -> None:
        with self._lock:
            runner = self._pods.pop(uid, None)
        if runner is not None:
            threading.Thread(target=self._stop_pod, args=(runner, grace), daemon=True).start()

    def _stop_pod(self, runner: PodRunner, grace: float | None) -> None:
        if grace is None:
            grace = float(runner.pod["spec"].get("terminationGracePeriodSeconds", 30))
        if self.max_stop_grace is not None:
            grace = min(grace, self.max_stop_grace)
        runner.stop(grace)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.kubelet", description=__doc__.splitlines()[0]
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
