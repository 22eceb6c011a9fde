"""Translate a pod's spec into local processes: argv, environment, files.

The process kubelet runs a container as a local process, so everything a container
runtime would give it has to be made by hand, following Kubernetes' own rules:

- argv: ``command`` replaces the image's entrypoint, ``args`` its default arguments, and
  ``$(VAR)`` expands from the container's environment; the first word is then mapped to a
  local executable (our image's entrypoint ``llmagents`` becomes this virtualenv's
  console script).
- environment: ``envFrom`` first, then ``env`` in order; ``valueFrom`` reads ConfigMaps,
  Secrets, the downward API (``status.podIP`` is the pod's loopback address) and resource
  fields. Host variables are not inherited, except a short list (PATH, HOME, ...).
- files: ConfigMap, Secret, emptyDir, downwardAPI and projected volumes (which is how the
  service-account token arrives) are written under the pod's directory; a container gets
  ``KUBECONFIG`` for the pod's token unless the pod opts out of the automatic mount, and
  then only if it mounts a projected token where in-cluster configuration reads it. Each
  container gets a root directory in which every ``mountPath`` is a symlink to its
  volume. ``LLMAGENTS_ROOT`` names that root; absolute paths under a mount path in
  ``env`` values and ``args`` are rewritten to point inside it.
- network: every pod has its own address in 127.0.0.0/8 (``LLMAGENTS_POD_IP``); URLs to
  ``localhost``/``127.0.0.1`` on a port the pod declares are rewritten to that address,
  so containers of a pod reach each other while pods never collide on ports.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

INHERITED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "COVERAGE_PROCESS_START",
)  # fmt: skip


class NotReady(Exception):
    """Something the pod refers to (ConfigMap, Secret, ServiceAccount) does not exist yet."""


class ObjectSource(Protocol):
    """Reads the API objects a pod refers to; ``None`` when the object does not exist."""

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def token(
        self, namespace: str, service_account: str, *, audience: str | None,
        expiration: int, pod_name: str, pod_uid: str,
    ) -> str: ...  # fmt: skip


@dataclass
class ContainerPlan:
    """How to run one container locally."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    kind: str = "main"  # "init", "sidecar" (an init container with restartPolicy Always), "main"


@dataclass
class PodPlan:
    """Everything needed to run a pod's containers of our image, in start order."""

    containers: list[ContainerPlan] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # containers of other images


@dataclass
class Translation:
    """Settings that map an image's world onto this machine."""

    matches_image: Callable[[str], bool]
    image_entrypoint: Sequence[str]
    image_cmd: Sequence[str]
    entrypoints: Mapping[str, Sequence[str]]
    server: str
    ca_pem: bytes
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The image's own ENV (our Dockerfile's); without PYTHONUNBUFFERED a Python
    # container's output would reach its log file only in 8 KiB blocks.
    image_env: Mapping[str, str] = field(
        default_factory=lambda: {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    )


_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: unknown references stay as written, ``$$`` is ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


def _field_value(pod: dict[str, Any], path: str, pod_ip: str) -> str:
    meta = pod["metadata"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in {"metadata.labels", "metadata.annotations"}:
        items = meta.get(path.split(".")[1], {})
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path}")
    return str(simple[path])


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}  # fmt: skip


def _quantity(text: str) -> float:
    m = _QUANTITY.match(str(text))
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"unsupported quantity {text}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def _resource_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    kind, _, res = ref["resource"].partition(".")
    resources = container.get("resources", {})
    raw = resources.get(kind, {}).get(res) or resources.get("limits", {}).get(res)
    if raw is None:  # unset limits read as the node's allocatable, like the kubelet does
        raw = {"cpu": "32", "memory": "256Gi"}.get(res, "0")
    divisor = _quantity(ref.get("divisor", "1"))
    value = _quantity(raw) / divisor
    return str(int(-(-value // 1)))  # the kubelet rounds up


def _env(
    pod: dict[str, Any], container: dict[str, Any], *, source: ObjectSource, pod_ip: str,
    base: Mapping[str, str],
) -> dict[str, str]:  # fmt: skip
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = dict(base)
    for src in container.get("envFrom", []):
        prefix = src.get("prefix", "")
        ref = src.get("configMapRef") or src.get("secretRef")
        getter = source.config_map if "configMapRef" in src else source.secret
        data = getter(ns, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise NotReady(f"{'ConfigMap' if 'configMapRef' in src else 'Secret'} {ref['name']}")
        env.update({prefix + k: v.decode() for k, v in data.items()})
    for var in container.get("env", []):
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        vf = var["valueFrom"]
        if "fieldRef" in vf:
            env[name] = _field_value(pod, vf["fieldRef"]["fieldPath"], pod_ip)
        elif "resourceFieldRef" in vf:
            env[name] = _resource_value(container, vf["resourceFieldRef"])
        else:
            is_cm = "configMapKeyRef" in vf
            ref = vf["configMapKeyRef"] if is_cm else vf["secretKeyRef"]
            data = (source.config_map if is_cm else source.secret)(ns, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise NotReady(
                    f"{'ConfigMap' if is_cm else 'Secret'} {ref['name']} key {ref['key']}"
                )
            env[name] = data[ref["key"]].decode()
    return env


def _argv(
    container: dict[str, Any], env: Mapping[str, str], t: Translation, rewrite: _Rewriter
) -> list[str]:
    """The pod's command line in local terms; the entrypoint mapping is a host path as is."""
    if container.get("command"):
        words = [*container["command"], *container.get("args", [])]
    else:
        words = [*t.image_entrypoint, *(container.get("args") or t.image_cmd)]
    words = [rewrite(expand(w, env)) for w in words]
    if not words:
        raise ValueError(f"container {container['name']} has no command")
    head = words[0]
    mapped = t.entrypoints.get(head) or t.entrypoints.get(os.path.basename(head))
    if mapped is not None:
        return [*mapped, *words[1:]]
    if os.path.isabs(head) or shutil.which(head):
        return words
    raise ValueError(f"no local executable for {head!r} (configure an entrypoint mapping)")


class _Rewriter:
    """Points in-pod addresses and paths at their local equivalents."""

    def __init__(self, *, pod_ip: str, ports: set[int], mounts: dict[str, Path]) -> None:
        self.url = re.compile(r"(?<=://)(localhost|127\.0\.0\.1)(?=:(\d+))")
        self.pod_ip = pod_ip
        self.ports = ports
        # Longest mount path first, so /a/b wins over /a.
        self.mounts = sorted(mounts.items(), key=lambda kv: -len(kv[0]))

    def __call__(self, value: str) -> str:
        value = self.url.sub(
            lambda m: self.pod_ip if int(m.group(2)) in self.ports else m.group(1), value
        )
        for mount, local in self.mounts:
            pattern = re.compile(r"(^|=)" + re.escape(mount.rstrip("/")) + r"(?=/|$)")
            value = pattern.sub(lambda m, local=local: m.group(1) + str(local), value)
        return value


def plan_pod(
    pod: dict[str, Any], *, source: ObjectSource, pod_dir: Path, pod_ip: str, t: Translation,
) -> PodPlan:  # fmt: skip
    """Materialise the pod's volumes under ``pod_dir`` and plan its containers of our image."""
    from tooling._podfs import (
        materialise_volumes,
        mount_container,
        write_kubeconfig,
        write_projected_kubeconfig,
    )

    spec = pod["spec"]
    meta = pod["metadata"]
    volumes = materialise_volumes(pod, source=source, pod_dir=pod_dir, pod_ip=pod_ip)
    kubeconfig = write_kubeconfig(pod, source=source, pod_dir=pod_dir, t=t)
    ports = {
        p["containerPort"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        for p in c.get("ports", [])
    }
    plan = PodPlan()
    for kind, container in [
        *[("init", c) for c in spec.get("initContainers", [])],
        *[("main", c) for c in spec["containers"]],
    ]:
        if not t.matches_image(container.get("image", "")):
            plan.skipped.append(container["name"])
            continue
        if kind == "init" and container.get("restartPolicy") == "Always":
            kind = "sidecar"
        root, mounts = mount_container(container, volumes=volumes, pod_dir=pod_dir)
        base = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        base.update(t.image_env)
        base.update(t.extra_env)
        base["HOSTNAME"] = meta["name"]
        base["LLMAGENTS_POD_IP"] = pod_ip
        base["LLMAGENTS_ROOT"] = str(root)
        own = kubeconfig or write_projected_kubeconfig(
            pod, container, volumes=volumes, pod_dir=pod_dir, t=t
        )
        if own is not None:
            base["KUBECONFIG"] = str(own)
        env = _env(pod, container, source=source, pod_ip=pod_ip, base=base)
        rewrite = _Rewriter(pod_ip=pod_ip, ports=ports, mounts=mounts)
        # Only what the pod spec sets is the container's view of paths and ports; the
        # kubelet's own values (KUBECONFIG, LLMAGENTS_ROOT, the inherited host environment)
        # are host paths already, and may sit under a mount path such as /tmp.
        env = {k: v if base.get(k) == v else rewrite(v) for k, v in env.items()}
        argv = _argv(container, env, t, rewrite)
        cwd = root
        if container.get("workingDir"):
            cwd = Path(rewrite(container["workingDir"]))
            if not cwd.is_absolute() or not str(cwd).startswith(str(pod_dir)):
                cwd = root / container["workingDir"].lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        plan.containers.append(ContainerPlan(container["name"], argv, env, cwd, kind))
    return plan


def describe(plan: ContainerPlan) -> str:
    """A shell-like one-liner for logs (environment values left out: they may be secret)."""
    command = shlex.join(plan.argv).replace("\n", "\\n")  # one line per start in the log
    return f"{plan.name}: {command} (cwd {plan.cwd})"
