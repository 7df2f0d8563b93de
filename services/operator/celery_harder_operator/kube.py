"""The one Kubernetes call kopf does not make for us: deleting a resource (TTL).

Credentials come from kopf's own public login helpers (the pod's service account,
else KUBECONFIG), so the operator needs no Kubernetes client library.
"""

import base64
import ssl
import tempfile
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

import kopf

from celery_harder_operator.resource import GROUP, PLURAL, VERSION

TIMEOUT = 10.0


@lru_cache(maxsize=1)
def connection() -> kopf.ConnectionInfo:
    """The API server and credentials, read once."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no Kubernetes credentials: no service account and no KUBECONFIG")
    return info


def _file_of(path: object, data: str | bytes | None, directory: Path, name: str) -> str | None:
    """A file holding a kubeconfig item given either as a path or as base64 data."""
    if path:
        return str(path)
    if not data:
        return None
    target = directory / name
    target.write_bytes(base64.b64decode(data))
    return str(target)


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """TLS to the API server: its CA, and a client certificate when the kubeconfig has one."""
    info = connection()
    directory = Path(tempfile.mkdtemp(prefix="celery-harder-operator-"))
    ca = _file_of(info.ca_path, info.ca_data, directory, "ca.crt")
    context = ssl.create_default_context(cafile=ca)
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert = _file_of(info.certificate_path, info.certificate_data, directory, "client.crt")
    key = _file_of(info.private_key_path, info.private_key_data, directory, "client.key")
    if cert:
        context.load_cert_chain(cert, key)
    return context


def delete_taskworkflow(namespace: str, name: str) -> None:
    """Delete a TaskWorkflow; already gone is fine."""
    info = connection()
    url = f"{info.server.rstrip('/')}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    request = urllib.request.Request(url, method="DELETE")
    if info.token:
        request.add_header("Authorization", f"{info.scheme or 'Bearer'} {info.token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=tls_context()):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
