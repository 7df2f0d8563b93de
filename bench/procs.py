"""The processes the benchmarks start beside celery_harder_dev.stack's: apps from bench/."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from celery_harder_dev.local_processes import api_command, free_port, start_process, stop_process
from celery_harder_dev.polling import ProcessExited, wait_until
from celery_harder_dev.stack import BIN, READY_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that imports `bench` from this checkout."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT), **(extra or {})}


@dataclass
class Served:
    """uvicorn serving one app on 127.0.0.1."""

    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def serving(factory: str, workdir: Path, env: dict[str, str]) -> Iterator[Served]:
    """uvicorn serving `factory` with the API's command line (api_command), ready on /healthz."""
    port = free_port()
    cmd = [*api_command(BIN, port), "--log-level", "warning"]
    cmd[1] = factory  # the API's own flags, another app
    log = workdir / f"uvicorn-{port}.log"
    proc = start_process(cmd, log=log, env=bench_env(env), cwd=ROOT)
    served = Served(f"http://127.0.0.1:{port}", proc)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"{factory} exited: {log.read_text()[-2000:]}")
        return httpx.get(served.url + "/healthz", timeout=1).status_code == 200

    try:
        wait_until(healthy, READY_TIMEOUT, factory)
        yield served
    finally:
        stop_process(proc)


def rss_kib(pid: int) -> int:
    """Resident set size of one process, KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except FileNotFoundError:
        return []


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its direct children (a worker's pool), MiB."""
    return sum(rss_kib(p) for p in [pid, *children(pid)]) / 1024


PYTHON = sys.executable


@dataclass
class Program:
    """A benchmark child process (a raw Celery worker, a peer worker, a consumer)."""

    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            raise ProcessExited(f"{self.log.name} exited: {self.log.read_text()[-2000:]}")


@contextmanager
def running_program(
    cmd: list[str], name: str, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[Program]:
    """Start `cmd` with `bench` importable; stopped (with its children) afterwards."""
    log = workdir / f"{name}.log"
    proc = start_process(cmd, log=log, env=bench_env(env), cwd=ROOT)
    try:
        yield Program(proc, log)
    finally:
        stop_process(proc, timeout=30)


def raw_celery_worker(url: str, concurrency: int) -> list[str]:
    """A plain `celery worker` on bench.apps.raw_celery, prefork like celery-harder's."""
    return [
        str(BIN / "celery"), "-A", "bench.apps.raw_celery", "worker", "--pool=prefork",
        f"--concurrency={concurrency}", "--loglevel=WARNING", "--hostname=raw@%h",
    ]  # fmt: skip


def wait_for(check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `check` with a deadline (re-raising a child's exit at once)."""
    wait_until(check, timeout, what, interval=0.01)


def blocking_pop(client: redis.Redis, key: str, timeout: float) -> bytes:
    """BRPOP `key` within `timeout` seconds, in 1 s blocks (redis-py's socket timeout
    ends longer ones); TimeoutError if nothing came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        popped = client.brpop([key], timeout=1)
        if popped is not None:
            value = popped[1]
            return value if isinstance(value, bytes) else str(value).encode()
    raise TimeoutError(f"nothing on {key} after {timeout:.0f}s")
