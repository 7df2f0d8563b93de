"""The one Kubernetes call kopf does not make for us: deleting a resource (TTL).

Credentials come from kopf's own public login helpers (the pod's service account,
else KUBECONFIG), so the operator needs no Kubernetes client library. They are read
on every call: a bound service-account token is a projected file that the kubelet
rewrites about hourly, and kopf's helpers read their files each time they run.
"""

import base64
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import kopf

from celery_harder_operator.resource import GROUP, PLURAL, VERSION

TIMEOUT = 10.0
UNAUTHORIZED = 401


def connection() -> kopf.ConnectionInfo:
    """The API server and credentials, read afresh (a rotated token is picked up)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no Kubernetes credentials: no service account and no KUBECONFIG")
    return info


@dataclass(frozen=True)
class TlsMaterial:
    """Everything a TLS context to the API server depends on, by content, not by path."""

    ca: bytes | None
    certificate: bytes | None
    private_key: bytes | None
    insecure: bool


PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def _content(path: PathLike | None, data: str | bytes | None) -> bytes | None:
    """A kubeconfig item's bytes, given either as a file path or as base64 data."""
    if path:
        return Path(os.fsdecode(path)).read_bytes()
    if data:
        return base64.b64decode(data)
    return None


def tls_material(info: kopf.ConnectionInfo) -> TlsMaterial:
    """The CA and client certificate of a login, read now (they may rotate too)."""
    return TlsMaterial(
        ca=_content(info.ca_path, info.ca_data),
        certificate=_content(info.certificate_path, info.certificate_data),
        private_key=_content(info.private_key_path, info.private_key_data),
        insecure=bool(info.insecure),
    )


@lru_cache(maxsize=4)
def tls_context(material: TlsMaterial) -> ssl.SSLContext:
    """TLS to the API server; cached per material, so new certificates get a new context."""
    context = ssl.create_default_context(cadata=material.ca.decode() if material.ca else None)
    if material.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if material.certificate:
        # load_cert_chain reads only files: hand it private ones and remove them at once.
        with tempfile.TemporaryDirectory(prefix="celery-harder-operator-") as directory:
            cert = Path(directory) / "client.crt"
            cert.write_bytes(material.certificate)
            key = None
            if material.private_key:
                key = Path(directory) / "client.key"
                key.write_bytes(material.private_key)
            context.load_cert_chain(cert, key)
    return context


def _delete(info: kopf.ConnectionInfo, path: str) -> None:
    """One DELETE with the given login's credentials."""
    request = urllib.request.Request(f"{info.server.rstrip('/')}{path}", method="DELETE")
    if info.token:
        request.add_header("Authorization", f"{info.scheme or 'Bearer'} {info.token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT, context=tls_context(tls_material(info))):
        pass


def delete_taskworkflow(namespace: str, name: str) -> None:
    """Delete a TaskWorkflow; already gone is fine.

    A 401 logs in again and retries once: the token may have rotated between reading
    the file and the API server checking it. A second 401 is raised.
    """
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    for attempt in (1, 2):
        try:
            _delete(connection(), path)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return
            if exc.code == UNAUTHORIZED and attempt == 1:
                continue
            raise
        return
