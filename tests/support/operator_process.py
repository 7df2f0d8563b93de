"""The operator as users run it: `kopf run` against a real kube-apiserver and Redis."""

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from celery_harder_dev.local_processes import free_port, start_process, stop_process
from celery_harder_dev.polling import ProcessExited, wait_until
from celery_harder_operator.resource import GROUP, KIND, VERSION
from tests.support.stack import BIN, READY_TIMEOUT, StackEnv


def taskworkflow(name: str, workflow: Any, **spec: Any) -> dict[str, Any]:
    """A TaskWorkflow manifest named `name` running `workflow`, with more spec fields."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"workflow": workflow, **spec},
    }


@dataclass
class OperatorProcess:
    """One `kopf run` process; restartable, so tests can kill it mid-run."""

    stack: StackEnv
    kube_env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env_extra: dict[str, str] = field(default_factory=dict)
    #: Watch these namespaces only (`--namespace`), instead of `--all-namespaces`.
    namespaces: tuple[str, ...] = ()
    #: The port its /metrics listens on (127.0.0.1, a free one per start).
    metrics_port: int = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        port = free_port()
        self.metrics_port = free_port()
        self.starts += 1
        log = self.stack.workdir / f"operator-{self.starts}.log"
        scope = [f"--namespace={ns}" for ns in self.namespaces] or ["--all-namespaces"]
        cmd = [
            str(BIN / "kopf"), "run", "--standalone", *scope,
            f"--liveness=http://127.0.0.1:{port}/healthz",
            "-m", "celery_harder_operator.handlers",
        ]  # fmt: skip
        env: dict[str, Any] = {
            **self.stack.env("operator"),
            "KUBECONFIG": self.kube_env["KUBECONFIG"],
            "CELERY_HARDER_OPERATOR_POLL_INTERVAL": "0.5",
            "CELERY_HARDER_OPERATOR_METRICS_HOST": "127.0.0.1",
            "CELERY_HARDER_OPERATOR_METRICS_PORT": str(self.metrics_port),
            **self.env_extra,
        }
        proc = start_process(cmd, log=log, env=env, cwd=self.stack.workdir)
        self.process = proc

        def live() -> bool:
            if proc.poll() is not None:
                raise ProcessExited(f"operator exited: {log.read_text()[-3000:]}")
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200

        wait_until(live, READY_TIMEOUT, "operator liveness")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a node dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
            self.process = None


@contextmanager
def running_operator(
    stack: StackEnv,
    kube_env: dict[str, str],
    env: dict[str, str] | None = None,
    namespaces: tuple[str, ...] = (),
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(stack, kube_env, env_extra=dict(env or {}), namespaces=namespaces)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
