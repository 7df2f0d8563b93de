"""A throwaway Kubernetes control plane (etcd + kube-apiserver) for T2 tests.

Starts etcd and kube-apiserver on free loopback ports in a temporary directory,
with a fresh CA, serving certificate, admin client certificate and
service-account signing key, writes a kubeconfig, waits for ``/readyz`` and
stops both processes at teardown.

    from tests.support.kube import ControlPlane

    with ControlPlane() as kube:
        kube.kubectl("apply", "-f", "crd.yaml")
        print(kube.kubeconfig, kube.server)

What works: every built-in API (Deployments, Services, ServiceAccounts, RBAC,
Events, ...), CRDs and custom resources with schema validation, CEL rules,
status subresources, admission of built-in plugins, TokenRequest
(``kubectl create token``), impersonation (``kubectl auth can-i --as=...``).

What does not happen, because there is no kube-controller-manager, scheduler
or kubelet: no Pods are created for Deployments, no garbage collection of
ownerReferences, no ``default`` ServiceAccount in new namespaces, and deleted
namespaces stay ``Terminating`` forever (use a fresh namespace per test
instead of deleting one). The ``ServiceAccount`` admission plugin is disabled
by default so that Pods can still be created directly without the ``default``
ServiceAccount existing (pass ``disable_admission_plugins=()`` to keep it).

Binaries (built or installed by the repo's scripts, cached outside the repo):

* kube-apiserver, etcd: ``scripts/build-control-plane.sh`` ->
  ``~/.cache/celery-harder/control-plane/<K8S_VERSION>/``
* kubectl: ``scripts/install-k8s-tools.sh`` -> ``~/.cache/celery-harder/tools/kubectl``

Python packages: ``cryptography`` (certificates and keys).

Environment overrides: ``KUBE_APISERVER``, ``ETCD``, ``KUBECTL`` (paths),
``K8S_VERSION`` (default v1.35.4), ``CELERY_HARDER_CACHE`` (cache root),
``CELERY_HARDER_KEEP_KUBE=1`` (keep the temp dir with logs after stop).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from celery_harder_dev.cluster import pki
from celery_harder_dev.cluster.kubectl import Kubectl, KubectlError
from celery_harder_dev.local_processes import free_port

__all__ = [
    "DEFAULT_K8S_VERSION",
    "REPO_ROOT",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "MissingBinaryError",
    "find_binaries",
    "find_kubectl",
]

DEFAULT_K8S_VERSION = "v1.35.4"
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_CMD = "bash scripts/build-control-plane.sh"
TOOLS_CMD = "bash scripts/install-k8s-tools.sh"


class ControlPlaneError(RuntimeError):
    """etcd or kube-apiserver failed to start or answer."""


class MissingBinaryError(ControlPlaneError):
    """A binary is missing; the message names the command that provides it."""


# --------------------------------------------------------------- binaries


def cache_root() -> Path:
    return Path(os.environ.get("CELERY_HARDER_CACHE", Path.home() / ".cache" / "celery-harder"))


def _check_exe(path: Path, what: str, cmd: str) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(
            f"{what} not found at {path}. Build/install it with: `{cmd}` "
            f"(from the repo root {REPO_ROOT}), or set the path in the environment."
        )
    return path


def find_binaries(version: str | None = None) -> tuple[Path, Path]:
    """Return (kube-apiserver, etcd) paths or raise MissingBinaryError."""
    version = version or os.environ.get("K8S_VERSION", DEFAULT_K8S_VERSION)
    base = cache_root() / "control-plane" / version
    cmd = BUILD_CMD if version == DEFAULT_K8S_VERSION else f"K8S_VERSION={version} {BUILD_CMD}"
    apiserver = Path(os.environ.get("KUBE_APISERVER") or base / "kube-apiserver")
    etcd = Path(os.environ.get("ETCD") or base / "etcd")
    return _check_exe(apiserver, "kube-apiserver", cmd), _check_exe(etcd, "etcd", cmd)


def find_kubectl() -> Path:
    return _check_exe(
        Path(os.environ.get("KUBECTL") or cache_root() / "tools" / "kubectl"), "kubectl", TOOLS_CMD
    )


# ---------------------------------------------------------------- helpers


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:  # pragma: no cover - diagnostics only
        return f"<cannot read {path}: {exc}>"


def _pdeathsig_preexec():
    """Return a preexec_fn making the child die with SIGKILL if we die (Linux only).

    Only used from the main thread: PR_SET_PDEATHSIG fires when the *thread*
    that forked exits, so from a worker thread it would kill the child early.
    """
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover
        return None

    def _set():
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1

    return _set


def _generate_pki(d: Path) -> None:
    """CA, apiserver serving cert, admin client cert, service-account key pair."""
    ca = pki.CertificateAuthority.create("celery-harder-test-ca")
    ca.write(d, "ca")
    ca.issue(
        d,
        "apiserver",
        "kube-apiserver",
        usages=(pki.SERVER,),
        dns_names=pki.apiserver_dns_names("cluster.local"),
        ip_addresses=("127.0.0.1", "10.0.0.1"),
    )
    ca.issue(d, "admin", "admin", organization="system:masters")
    pki.write_service_account_keys(d)


# ----------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver on loopback. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        version: str | None = None,
        workdir: str | os.PathLike | None = None,
        disable_admission_plugins: Iterable[str] = ("ServiceAccount",),
        extra_apiserver_args: Sequence[str] = (),
        start_timeout: float = 90.0,
        keep: bool | None = None,
    ):
        self.apiserver_bin, self.etcd_bin = find_binaries(version)
        self.kubectl_bin = find_kubectl()
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="celery-harder-kube-"))
        )
        self.disable_admission_plugins = tuple(disable_admission_plugins)
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.start_timeout = start_timeout
        self.keep = keep if keep is not None else os.environ.get("CELERY_HARDER_KEEP_KUBE") == "1"
        self.etcd_proc: subprocess.Popen | None = None
        self.apiserver_proc: subprocess.Popen | None = None
        self._logs: list[Any] = []
        self.etcd_url = ""
        self.server = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        self.startup_seconds: float | None = None
        self._atexit_registered = False

    # -- public API -----------------------------------------------------

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def client(self) -> Kubectl:
        """kubectl bound to this control plane's kubeconfig."""
        return Kubectl(self.kubectl_bin, self.kubeconfig)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for subprocesses (kubectl, helm, an operator) aimed at this cluster."""
        return self.client.env(base)

    def kubectl(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster; returns a text CompletedProcess.

        Raises KubectlError on a non-zero exit when check is true."""
        if isinstance(input, bytes):
            input = input.decode()
        return self.client(*args, input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args: str, **kw) -> Any:
        """kubectl ... -o json, parsed."""
        return self.client.json(*args, **kw)

    def apply(
        self, manifest: str | Mapping | Sequence[Mapping], *extra: str
    ) -> subprocess.CompletedProcess:
        """kubectl apply -f - with a YAML/JSON string, a dict, or a list of dicts."""
        return self.client.apply(manifest, *extra)

    def create_namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        return name

    def wait_for_crd(self, name: str, timeout: float = 60) -> None:
        """Wait until a CRD is Established (polled through the API server, no sleeps)."""
        self.client.wait_established(f"crd/{name}", timeout=timeout)

    # -- lifecycle --------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self.pki.mkdir(parents=True, exist_ok=True)
            _generate_pki(self.pki)
            deadline = time.monotonic() + self.start_timeout
            self._start_with_retries(self._start_etcd, deadline)
            self._start_with_retries(self._start_apiserver, deadline)
            self._write_kubeconfig()
            self._wait_default_namespace(deadline)
        except BaseException:
            self.stop(_failed=True)
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, _failed: bool = False) -> None:
        for attr in ("apiserver_proc", "etcd_proc"):
            proc = getattr(self, attr)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            setattr(self, attr, None)
        for f in self._logs:
            try:
                f.close()
            except OSError:
                pass
        self._logs.clear()
        if self._own_workdir and not self.keep and not _failed and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    # -- internals --------------------------------------------------------

    def _start_with_retries(self, starter, deadline: float, attempts: int = 3) -> None:
        """Free ports can be taken between choosing and binding them: retry on a bind error."""
        for i in range(attempts):
            try:
                starter(deadline)
                return
            except _PortInUse:
                if i == attempts - 1:
                    raise ControlPlaneError(
                        f"could not find free ports after {attempts} attempts"
                    ) from None

    def _spawn(self, name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - open for the process's lifetime, closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=_pdeathsig_preexec(),  # noqa: PLW1509 - only set from the main thread
        )
        return proc, log_path

    def _died(self, name: str, proc: subprocess.Popen, log_path: Path) -> Exception:
        tail = _tail(log_path)
        if "address already in use" in tail:
            return _PortInUse(tail)
        return ControlPlaneError(
            f"{name} exited with code {proc.returncode} during startup; "
            f"last lines of {log_path}:\n{tail}"
        )

    def _start_etcd(self, deadline: float) -> None:
        client, peer = free_port(), free_port()
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self.etcd_url = f"http://127.0.0.1:{client}"
        proc, log_path = self._spawn(
            "etcd",
            [
                str(self.etcd_bin),
                "--name=test",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=test=http://127.0.0.1:{peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )
        self.etcd_proc = proc
        url = f"{self.etcd_url}/health"
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                self.etcd_proc = None
                raise self._died("etcd", proc, log_path)
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    body = r.read().decode()
                    if json.loads(body).get("health") == "true":
                        return
                    last = body
            except (OSError, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"etcd not healthy at {url} before the deadline (last: {last}); "
                    f"log tail:\n{_tail(log_path)}"
                )
            _wait_or_exit(proc, 0.1)

    def _start_apiserver(self, deadline: float) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self.pki
        argv = [
            str(self.apiserver_bin),
            f"--etcd-servers={self.etcd_url}",
            "--etcd-prefix=/registry",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--storage-backend=etcd3",
            "--v=1",
        ]
        if self.disable_admission_plugins:
            argv.append("--disable-admission-plugins=" + ",".join(self.disable_admission_plugins))
        argv.extend(self.extra_apiserver_args)
        proc, log_path = self._spawn("kube-apiserver", argv)
        self.apiserver_proc = proc
        ctx = self._ssl_context()
        url = f"{self.server}/readyz"
        last = "no answer yet"
        while True:
            if proc.poll() is not None:
                self.apiserver_proc = None
                raise self._died("kube-apiserver", proc, log_path)
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[-2000:]}"
            except OSError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver not ready at {url} before the deadline; last answer: {last}\n"
                    f"log tail ({log_path}):\n{_tail(log_path)}"
                )
            _wait_or_exit(proc, 0.2)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _wait_default_namespace(self, deadline: float) -> None:
        """readyz can answer before the bootstrap controller has made the `default` namespace."""
        ctx = self._ssl_context()
        url = f"{self.server}/api/v1/namespaces/default"
        last = ""
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"namespace 'default' did not appear ({last})")
            _wait_or_exit(self.apiserver_proc, 0.1)

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "celery-harder-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki / "admin.crt"),
                        "client-key": str(pki / "admin.key"),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "celery-harder-test",
                    "context": {
                        "cluster": "celery-harder-test",
                        "user": "admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "celery-harder-test",
        }
        # JSON is valid YAML; every kubeconfig reader accepts it.
        self.kubeconfig.write_text(json.dumps(cfg, indent=2))
        self.kubeconfig.chmod(0o600)


class _PortInUse(ControlPlaneError):
    pass


def _wait_or_exit(proc: subprocess.Popen | None, seconds: float) -> None:
    """Pause between polls, returning early if the process exits."""
    if proc is None:
        time.sleep(seconds)
        return
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


if __name__ == "__main__":  # manual check: python -m tests.support.kube
    with ControlPlane() as cp:
        print(f"server {cp.server}\nkubeconfig {cp.kubeconfig}\nup in {cp.startup_seconds:.1f}s")
        print(cp.kubectl("get", "--raw", "/version").stdout)
        print(cp.kubectl("get", "ns").stdout)
