"""Files a pod's containers see: volumes, mount roots and the service-account kubeconfig.

Layout under a pod's directory::

    volumes/<volume>/...            ConfigMap/Secret keys as files, emptyDir, projected
    rootfs/<container>/<mountPath>  symlink to volumes/<volume>[/<subPath>]
    serviceaccount/kubeconfig       the pod's service-account credentials for the local API
    serviceaccount/<container>.kubeconfig  the same, for a container that mounts a projected
                                    token where in-cluster configuration reads it (the
                                    pod having opted out of the automatic mount)
    logs/<container>.log            the container's stdout and stderr (kept after the pod)

Volumes are written once, when the pod starts; later edits to a ConfigMap are not
propagated (a restart of the container does not re-read them either). hostPath and
persistentVolumeClaim volumes become empty directories, with a warning.
"""

from __future__ import annotations

import json
import logging
from base64 import b64encode
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tooling._pod import NotReady, ObjectSource, _field_value

if TYPE_CHECKING:
    from tooling._pod import Translation

logger = logging.getLogger(__name__)

TOKEN_SECONDS = 24 * 3600
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _keys(
    data: dict[str, bytes], items: list[dict[str, Any]] | None, target: Path, mode: int, what: str
) -> None:
    if not items:
        for key, value in data.items():
            _write(target / key, value, mode)
        return
    for item in items:
        if item["key"] not in data:
            raise NotReady(f"{what} has no key {item['key']}")
        _write(target / item["path"], data[item["key"]], item.get("mode", mode))


def _object(
    ns: str, spec: dict[str, Any], *, source: ObjectSource, is_cm: bool
) -> dict[str, bytes] | None:
    name = spec.get("name") if is_cm else spec.get("secretName", spec.get("name"))
    data = (source.config_map if is_cm else source.secret)(ns, name)
    if data is None and not spec.get("optional"):
        raise NotReady(f"{'ConfigMap' if is_cm else 'Secret'} {name}")
    return data


def _projected(
    pod: dict[str, Any], vol: dict[str, Any], target: Path, *, source: ObjectSource, pod_ip: str
) -> None:
    ns = pod["metadata"]["namespace"]
    mode = vol.get("defaultMode", 0o644)
    for src in vol.get("sources", []):
        if "configMap" in src or "secret" in src:
            is_cm = "configMap" in src
            spec = src["configMap" if is_cm else "secret"]
            data = _object(ns, spec, source=source, is_cm=is_cm)
            if data is not None:
                _keys(data, spec.get("items"), target, mode, spec.get("name", ""))
        elif "serviceAccountToken" in src:
            sat = src["serviceAccountToken"]
            token = source.token(
                ns,
                pod["spec"].get("serviceAccountName") or "default",
                audience=sat.get("audience"),
                expiration=max(int(sat.get("expirationSeconds", 3607)), TOKEN_SECONDS),
                pod_name=pod["metadata"]["name"],
                pod_uid=pod["metadata"].get("uid", ""),
            )
            _write(target / sat["path"], token.encode(), 0o600)
        elif "downwardAPI" in src:
            _downward(pod, src["downwardAPI"], target, pod_ip, mode)


def _downward(
    pod: dict[str, Any], spec: dict[str, Any], target: Path, pod_ip: str, mode: int
) -> None:
    for item in spec.get("items", []):
        if "fieldRef" in item:
            value = _field_value(pod, item["fieldRef"]["fieldPath"], pod_ip)
            _write(target / item["path"], value.encode(), item.get("mode", mode))


def materialise_volumes(
    pod: dict[str, Any], *, source: ObjectSource, pod_dir: Path, pod_ip: str
) -> dict[str, Path]:
    """Write every volume of the pod; return volume name -> directory."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    for vol in pod["spec"].get("volumes", []):
        target = pod_dir / "volumes" / vol["name"]
        target.mkdir(parents=True, exist_ok=True)
        out[vol["name"]] = target
        if "configMap" in vol or "secret" in vol:
            is_cm = "configMap" in vol
            spec = vol["configMap" if is_cm else "secret"]
            data = _object(ns, spec, source=source, is_cm=is_cm)
            if data is not None:
                mode = spec.get("defaultMode", 0o644)
                _keys(data, spec.get("items"), target, mode, spec.get("name", ""))
        elif "projected" in vol:
            _projected(pod, vol["projected"], target, source=source, pod_ip=pod_ip)
        elif "downwardAPI" in vol:
            spec = vol["downwardAPI"]
            _downward(pod, spec, target, pod_ip, spec.get("defaultMode", 0o644))
        elif "emptyDir" not in vol:
            logger.warning(
                "pod %s/%s: volume %s (%s) is not supported; it is an empty directory",
                ns, pod["metadata"]["name"], vol["name"], ", ".join(k for k in vol if k != "name"),
            )  # fmt: skip
    return out


def mount_container(
    container: dict[str, Any], *, volumes: dict[str, Path], pod_dir: Path
) -> tuple[Path, dict[str, Path]]:
    """Build the container's root of symlinks; return (root, mountPath -> local path)."""
    root = pod_dir / "rootfs" / container["name"]
    root.mkdir(parents=True, exist_ok=True)
    mounts: dict[str, Path] = {}
    for vm in container.get("volumeMounts", []):
        source = volumes.get(vm["name"])
        if source is None:
            raise ValueError(f"container {container['name']} mounts unknown volume {vm['name']}")
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        link = root / vm["mountPath"].lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
        mounts[vm["mountPath"]] = link
    return root, mounts


def _kubeconfig(
    *, ns: str, sa: str, server: str, cluster: dict[str, str], user: dict[str, str]
) -> dict[str, Any]:
    name = f"{ns}-{sa}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **cluster}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": ns}}],
        "current-context": name,
    }


def write_projected_kubeconfig(
    pod: dict[str, Any], container: dict[str, Any], *, volumes: dict[str, Path], pod_dir: Path,
    t: Translation,
) -> Path | None:  # fmt: skip
    """A kubeconfig reading the token the container mounts where in-cluster configuration
    looks for it, or ``None`` when it mounts none there.

    This stands in for in-cluster configuration, which dials the ``kubernetes`` Service's
    cluster IP; the credentials are the container's own projected files (``tokenFile``,
    the projected ``ca.crt`` when there is one), so a container without that mount, like
    a real one, has no credentials at all.
    """
    sources = {
        v["name"]: v["projected"].get("sources", [])
        for v in pod["spec"].get("volumes", [])
        if "projected" in v
    }
    for mount in container.get("volumeMounts", []):
        if mount["mountPath"].rstrip("/") != SERVICE_ACCOUNT_DIR or mount.get("subPath"):
            continue
        tokens = [s["serviceAccountToken"] for s in sources.get(mount["name"], [])
                  if "serviceAccountToken" in s]  # fmt: skip
        if not tokens:
            continue
        directory = volumes[mount["name"]]
        ca = directory / "ca.crt"
        cluster = (
            {"certificate-authority": str(ca)}
            if ca.exists()
            else {"certificate-authority-data": b64encode(t.ca_pem).decode()}
        )
        config = _kubeconfig(
            ns=pod["metadata"]["namespace"],
            sa=pod["spec"].get("serviceAccountName") or "default",
            server=t.server,
            cluster=cluster,
            user={"tokenFile": str(directory / tokens[0]["path"])},
        )
        path = pod_dir / "serviceaccount" / f"{container['name']}.kubeconfig"
        _write(path, (json.dumps(config, indent=2) + "\n").encode(), 0o600)
        return path
    return None


def write_kubeconfig(
    pod: dict[str, Any], *, source: ObjectSource, pod_dir: Path, t: Translation
) -> Path | None:
    """A kubeconfig with a pod-bound token of the pod's service account, or ``None``.

    In-cluster configuration cannot be used: it dials the ``kubernetes`` Service's
    cluster IP, which nothing here may contact. ``None`` when the pod opts out of a token
    (``automountServiceAccountToken: false``), as a real pod would then have no credentials.
    """
    if pod["spec"].get("automountServiceAccountToken") is False:
        return None
    ns = pod["metadata"]["namespace"]
    sa = pod["spec"].get("serviceAccountName") or "default"
    token = source.token(
        ns, sa, audience=None, expiration=TOKEN_SECONDS,
        pod_name=pod["metadata"]["name"], pod_uid=pod["metadata"].get("uid", ""),
    )  # fmt: skip
    config = _kubeconfig(
        ns=ns, sa=sa, server=t.server,
        cluster={"certificate-authority-data": b64encode(t.ca_pem).decode()},
        user={"token": token},
    )  # fmt: skip
    d = pod_dir / "serviceaccount"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(d / "token", token.encode(), 0o600)
    _write(d / "ca.crt", t.ca_pem, 0o644)
    _write(d / "namespace", ns.encode(), 0o644)
    path = d / "kubeconfig"
    _write(path, (json.dumps(config, indent=2) + "\n").encode(), 0o600)
    return path
