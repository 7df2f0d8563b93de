"""The Kubernetes calls kopf does not make for us: TaskWorkflows created, read, patched, deleted.

A TTL deletes a finished TaskWorkflow; a CronTaskWorkflow creates its runs, stops the
one it replaces and deletes those beyond its history limits.

Credentials come from kopf's own public login helpers (the pod's service account,
else KUBECONFIG), so the operator needs no Kubernetes client library. They are read
on every call: a bound service-account token is a projected file that the kubelet
rewrites about hourly, and kopf's helpers read their files each time they run.
"""

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import kopf

from celery_harder_operator.resource import GROUP, PLURAL, VERSION

TIMEOUT = 10.0
UNAUTHORIZED = 401
NOT_FOUND = 404
CONFLICT = 409
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


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


def _call(
    info: kopf.ConnectionInfo, method: str, path: str, body: Any, content_type: str
) -> dict[str, Any]:
    """One request with the given login's credentials; the answer's JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{info.server.rstrip('/')}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    request.add_header("Accept", JSON)
    if info.token:
        request.add_header("Authorization", f"{info.scheme or 'Bearer'} {info.token}")
    context = tls_context(tls_material(info))
    with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def _request(method: str, path: str, body: Any = None, content_type: str = JSON) -> dict[str, Any]:
    """A request to the API server; HTTPError for an error answer.

    A 401 logs in again and retries once: the token may have rotated between reading
    the file and the API server checking it. A second 401 is raised.
    """
    try:
        return _call(connection(), method, path, body, content_type)
    except urllib.error.HTTPError as exc:
        if exc.code != UNAUTHORIZED:
            raise
    return _call(connection(), method, path, body, content_type)


def _path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def delete_taskworkflow(namespace: str, name: str) -> None:
    """Delete a TaskWorkflow; already gone is fine."""
    try:
        _request("DELETE", _path(namespace, name))
    except urllib.error.HTTPError as exc:
        if exc.code != NOT_FOUND:
            raise


def create_taskworkflow(namespace: str, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """Create a TaskWorkflow: the stored object, or None when the name is already taken."""
    try:
        return _request("POST", _path(namespace), manifest)
    except urllib.error.HTTPError as exc:
        if exc.code == CONFLICT:
            return None
        raise


def get_taskworkflow(namespace: str, name: str) -> dict[str, Any] | None:
    """A TaskWorkflow, or None when there is none of that name."""
    try:
        return _request("GET", _path(namespace, name))
    except urllib.error.HTTPError as exc:
        if exc.code == NOT_FOUND:
            return None
        raise


def patch_taskworkflow(namespace: str, name: str, patch: dict[str, Any]) -> None:
    """A merge patch of a TaskWorkflow's spec or metadata; already gone is fine."""
    try:
        _request("PATCH", _path(namespace, name), patch, MERGE_PATCH)
    except urllib.error.HTTPError as exc:
        if exc.code != NOT_FOUND:
            raise
