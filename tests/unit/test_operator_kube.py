"""T0/T1: the operator's TTL delete uses the current token: rotation, and one retry on 401.

A real HTTPS server on loopback plays the API server and accepts only the token the
test calls valid. Credentials come from kopf's real `login_with_kubeconfig`, reading a
real kubeconfig file that the test rewrites to rotate the token, as the kubelet
rewrites a projected service-account token. The one test double: kopf's
`login_with_service_account` is replaced by "no service account here", because its
paths are fixed under /var/run/secrets; kopf's source reads that token file on every
call too (`kopf/_core/intents/piggybacking.py`, `with open(token_path) ... f.read()`).
"""

import base64
import datetime as dt
import ipaddress
import ssl
import threading
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import kopf
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from celery_harder_operator import kube

OLD, NEW = "token-before-rotation", "token-after-rotation"
PATH = "/apis/celery-harder.io/v1alpha1/namespaces/default/taskworkflows/demo"


def make_pki(directory: Path) -> tuple[bytes, Path, Path]:
    """A CA (PEM) and a server certificate and key for 127.0.0.1 signed by it (files)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file


@dataclass
class FakeApiServer:
    """What the loopback API server saw, and how it answers."""

    url: str
    valid: str = OLD
    seen: list[str] = field(default_factory=list)
    # Called with the request's token before answering; may return a status to force.
    hook: Callable[[str], int | None] | None = None


class Kubeconfig:
    """A kubeconfig file with a bearer token, rewritten to rotate it."""

    def __init__(self, path: Path, server: str, ca: bytes) -> None:
        self.path, self.server, self.ca = path, server, ca

    def write(self, token: str) -> None:
        """Write the file with `token`, as a rotation does."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(self.ca).decode(),
                    },
                }
            ],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "sa"}}],
        }
        self.path.write_text(yaml.safe_dump(config))


@pytest.fixture
def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeApiServer, Kubeconfig]]:
    """An HTTPS API server on loopback and a kubeconfig pointing at it with token OLD."""
    ca, cert_file, key_file = make_pki(tmp_path)
    state = FakeApiServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_DELETE(self) -> None:
            """200 for the current token and the known path, 404 elsewhere, else 401."""
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            state.seen.append(token)
            forced = state.hook(token) if state.hook else None
            if forced is not None:
                code = forced
            elif token != state.valid:
                code = 401
            else:
                code = 200 if self.path == PATH else 404
            body = b'{"kind": "Status"}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads `seen`, not the log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    kubeconfig = Kubeconfig(tmp_path / "kubeconfig", state.url, ca)
    kubeconfig.write(OLD)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig.path))
    # The double: no service account on this machine (see the module docstring).
    monkeypatch.setattr(kopf, "login_with_service_account", lambda **_: None)
    kube.tls_context.cache_clear()
    try:
        yield state, kubeconfig
    finally:
        server.shutdown()
        server.server_close()
        kube.tls_context.cache_clear()


def test_a_rotated_token_is_used_after_rotation(api: tuple[FakeApiServer, Kubeconfig]) -> None:
    server, kubeconfig = api
    kube.delete_taskworkflow("default", "demo")
    kubeconfig.write(NEW)  # the kubelet refreshes the projected token...
    server.valid = NEW  # ...and the old one is no longer accepted
    kube.delete_taskworkflow("default", "demo")
    assert server.seen == [OLD, NEW]  # the new token on the first try: no 401 on the way


def test_a_401_logs_in_again_and_retries_once(api: tuple[FakeApiServer, Kubeconfig]) -> None:
    server, kubeconfig = api

    def rotate_after_the_read(token: str) -> int | None:
        # The token rotates between the operator's read and the server's check.
        if token == OLD:
            kubeconfig.write(NEW)
            server.valid = NEW
        return None

    server.hook = rotate_after_the_read
    kube.delete_taskworkflow("default", "demo")
    assert server.seen == [OLD, NEW]


def test_a_second_401_is_raised_after_exactly_one_retry(
    api: tuple[FakeApiServer, Kubeconfig],
) -> None:
    server, _ = api
    server.hook = lambda token: 401
    with pytest.raises(urllib.error.HTTPError) as raised:
        kube.delete_taskworkflow("default", "demo")
    assert raised.value.code == 401
    assert server.seen == [OLD, OLD]


def test_already_gone_is_fine(api: tuple[FakeApiServer, Kubeconfig]) -> None:
    server, _ = api
    kube.delete_taskworkflow("default", "gone")
    assert server.seen == [OLD]


def test_tls_context_is_cached_per_certificate_material(
    api: tuple[FakeApiServer, Kubeconfig],
) -> None:
    _, kubeconfig = api
    for _ in range(3):
        kube.delete_taskworkflow("default", "demo")
    assert kube.tls_context.cache_info().currsize == 1
    # New CA material (a rotated CA bundle) gets a context of its own.
    other = kubeconfig.path.parent / "other"
    other.mkdir()
    other_ca, client_cert, client_key = make_pki(other)
    first = kube.tls_material(kube.connection())
    changed = kube.TlsMaterial(other_ca, None, None, insecure=False)
    assert kube.tls_context(first) is kube.tls_context(first)
    assert kube.tls_context(changed) is not kube.tls_context(first)
    # A kubeconfig with a client certificate (kube-apiserver's admin login) loads it.
    with_client = kube.TlsMaterial(
        other_ca, client_cert.read_bytes(), client_key.read_bytes(), insecure=False
    )
    assert kube.tls_context(with_client).verify_mode == ssl.CERT_REQUIRED
