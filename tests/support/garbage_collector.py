"""Kubernetes' garbage collector for a test control plane: kube-controller-manager, GC only.

The T2 control plane (tests/support/kube.py) runs no controllers, so owner references
are stored but never acted on. This starts the one controller that acts on them, built
by scripts/build-control-plane.sh beside kube-apiserver, with the admin credentials.
"""

import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery_harder_dev.local_processes import free_port, start_process, stop_process
from celery_harder_dev.polling import ProcessExited, wait_until
from tests.support.kube import ControlPlane

START_TIMEOUT = 60.0


@contextmanager
def running_garbage_collector(kube: ControlPlane, workdir: Path) -> Iterator[Path]:
    """kube-controller-manager with --controllers=garbage-collector-controller; its log path."""
    binary = kube.apiserver_bin.parent / "kube-controller-manager"
    port = free_port()
    log = workdir / "kube-controller-manager.log"
    config = str(kube.kubeconfig)
    proc = start_process(
        [str(binary), f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
         f"--authorization-kubeconfig={config}", "--controllers=garbage-collector-controller",
         "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}", "--v=1"],
        log=log,
    )  # fmt: skip
    # Its serving certificate is self-signed: /healthz is only a liveness signal here.
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE

    def healthy() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"kube-controller-manager exited: {log.read_text()[-3000:]}")
        url = f"https://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=2, context=insecure) as answer:
            return bool(answer.status == 200)

    try:
        wait_until(healthy, START_TIMEOUT, "kube-controller-manager /healthz")
        yield log
    finally:
        stop_process(proc)
