"""Certificates and keys for the local control plane, made with the ``openssl`` CLI.

A real API server wants real TLS: a cluster CA, a serving certificate for 127.0.0.1,
client certificates whose subject is the identity RBAC sees (``O=system:masters`` for the
admin, ``CN=system:kube-scheduler`` and so on), and an RSA key pair that signs
service-account tokens. ``openssl`` ships with Debian's base image, so this needs no
Python dependency. Files are made once per state directory and reused on restart.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Names the API server's serving certificate answers to. Processes on this machine dial
# 127.0.0.1; pods on a real node (tooling.node) dial the `kubernetes` Service's
# address 10.96.0.1, the first of the service CIDR; the in-cluster names are there so that
# clients that insist on them still verify.
_SERVING_SANS = (
    "IP:127.0.0.1",
    "IP:10.96.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key, as file paths."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every credential file the control plane needs."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def client(self, name: str) -> ClientCert:
        return ClientCert(self.dir / f"{name}.crt", self.dir / f"{name}.key")


# file stem -> subject. O= becomes the user's group, CN= the user name.
CLIENTS: dict[str, str] = {
    "admin": "/O=system:masters/CN=llmagents-admin",
    "controller-manager": "/CN=system:kube-controller-manager",
    "scheduler": "/CN=system:kube-scheduler",
    # The API server's identity towards aggregated API servers (request-header auth).
    "front-proxy-client": "/CN=front-proxy-client",
    # The API server's identity towards kubelets (`kubectl logs`, exec), as kubeadm makes it.
    "kubelet-client": "/O=system:masters/CN=kube-apiserver-kubelet-client",
    # A real node's kubelet (tooling.node): the Node authorizer's naming.
    "node": "/O=system:nodes/CN=system:node:llmagents-node",
}


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _ec_key(path: Path) -> None:
    # P-256 keys are made in milliseconds, unlike RSA; every component accepts them.
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path.name, cwd=path.parent
    )


def _sign(pki: Pki, stem: str, subject: str, *, extensions: str) -> None:
    d = pki.dir
    _ec_key(d / f"{stem}.key")
    _openssl("req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr", cwd=d)
    (d / f"{stem}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", f"{stem}.ext",
        "-out", f"{stem}.crt", cwd=d,
    )  # fmt: skip
    (d / f"{stem}.csr").unlink()
    (d / f"{stem}.ext").unlink()


def ensure_pki(directory: Path) -> Pki:
    """Create the CA, serving, client and service-account credentials that ``directory`` lacks.

    Files already there are kept, so a PKI made by an older version of this module gains
    only the credentials added since.
    """
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl CLI is needed to make the control plane's certificates")
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Clusters of parallel test workers may share one PKI; one of them makes it.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _make_missing(pki)
    return pki


def _make_missing(pki: Pki) -> None:
    directory = pki.dir
    if not pki.ca_cert.exists():
        for old in directory.glob("*.crt"):  # certificates of a lost CA are worthless
            old.unlink()
        _ec_key(pki.ca_key)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=llmagents-local-ca",
            "-days", "3650", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-out", "ca.crt", cwd=directory,
        )  # fmt: skip
    if not pki.serving_cert.exists():
        _sign(
            pki,
            "apiserver",
            "/CN=kube-apiserver",
            extensions=(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(_SERVING_SANS)}\n"
            ),
        )
    for stem, subject in CLIENTS.items():
        if pki.client(stem).cert.exists():
            continue
        _sign(
            pki,
            stem,
            subject,
            extensions=(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n"
            ),
        )
    if not pki.sa_pub.exists():
        # Service-account tokens are signed RS256, the algorithm every consumer accepts.
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
