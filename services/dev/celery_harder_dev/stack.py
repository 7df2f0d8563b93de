"""Real processes on loopback: redis-server, a prefork Celery worker, uvicorn serving the API.

Each starts on a free loopback port in a working directory, is polled until ready
with a deadline, and is stopped (with its children) when the context exits. The
tests (tests/support/stack.py), `make bench` and `make chaos` all start them here.
"""

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from celery_harder_api.auth import HEADER, entry_for
from celery_harder_dev.local_processes import (
    api_command,
    free_port,
    port_open,
    redis_command,
    start_process,
    stop_process,
    worker_command,
)
from celery_harder_dev.polling import ProcessExited, wait_until
from celery_harder_dev.queues import queue_keys

BIN = Path(sys.executable).parent
READY_TIMEOUT = 60.0
IDLE_DB = 3  # a Redis database no worker consumes: what is enqueued there stays visible


@dataclass
class RedisServer:
    """A private redis-server on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    password: str | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, password=self.password)


def queued_messages(server: RedisServer, db: int = IDLE_DB) -> int:
    """Messages waiting in a database's default queue and its priority sub-lists."""
    client = server.client(db)
    return sum(int(client.llen(key)) for key in queue_keys("celery"))


@contextmanager
def running_redis(workdir: Path, password: str | None = None) -> Iterator[RedisServer]:
    """Start redis-server in `workdir` (wanting `password`, if given) and stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = ["--requirepass", password] if password else []
    proc = start_process([*redis_command(port, workdir), *auth], log=workdir / "redis.log")
    server = RedisServer(port, proc, password)
    try:
        wait_until(lambda: bool(server.client().ping()), READY_TIMEOUT, "redis-server")
        yield server
    finally:
        stop_process(proc)


@dataclass
class AofRedis:
    """A private redis-server with `appendfsync always` that can be killed and restarted."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) on the same port, loading the same append-only file."""
        cmd = [
            *redis_command(self.port, self.workdir),
            "--appendonly", "yes",
            "--appendfsync", "always",
        ]  # fmt: skip
        log = self.workdir / "redis.log"
        self.process = start_process(cmd, log=log)
        wait_until(lambda: bool(self.client().ping()), READY_TIMEOUT, "redis-server")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        proc = self.process
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not port_open(self.port), 10, "redis port closed")

    def pause(self, sig: signal.Signals) -> None:
        """SIGSTOP (silent: connections stay open, nothing answers) or SIGCONT."""
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def stop(self) -> None:
        """Stop the current process, if any."""
        if self.process is not None:
            stop_process(self.process)

    def url(self) -> str:
        """Broker and result backend URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A fresh client that gives up quickly while the server is down."""
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)


@contextmanager
def aof_redis(workdir: Path) -> Iterator[AofRedis]:
    """An AofRedis on a free port in `workdir`, stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = AofRedis(free_port(), workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class StackEnv:
    """The environment every process of one test stack shares."""

    broker_url: str
    workdir: Path
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, name: str) -> dict[str, str]:
        return {
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": self.broker_url,
            "CELERY_HARDER_DATA_DIR": str(self.workdir / "data"),
            "CELERY_HARDER_HEARTBEAT_FILE": str(self.workdir / f"{name}.heartbeat"),
            "CELERY_HARDER_HEARTBEAT_INTERVAL": "1",
            "PYTHONUNBUFFERED": "1",
            **self.extra,
        }


@dataclass
class Worker:
    """A `celery worker` main process with its prefork pool."""

    name: str
    process: subprocess.Popen[bytes]
    heartbeat: Path
    log: Path

    def children(self) -> list[int]:
        """Pids of the pool processes."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the main process alone, as Kubernetes does to PID 1."""
        os.kill(self.process.pid, sig)


def start_worker(
    stack: StackEnv, name: str = "w1", concurrency: int = 2, queues: Sequence[str] = ("celery",)
) -> Worker:
    """Start a prefork worker on `queues` the way users run it and wait until it consumes."""
    heartbeat = stack.workdir / f"{name}.heartbeat"
    heartbeat.unlink(missing_ok=True)
    log = stack.workdir / f"{name}.log"
    cmd = [*worker_command(BIN, concurrency, f"{name}@%h"), "-Q", ",".join(queues)]
    proc = start_process(cmd, log=log, env=stack.env(name), cwd=stack.workdir)
    worker = Worker(name, proc, heartbeat, log)

    def consuming() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"worker exited: {log.read_text()[-2000:]}")
        return heartbeat.exists() and len(worker.children()) >= concurrency

    try:
        wait_until(consuming, READY_TIMEOUT, f"worker {name}")
    except BaseException:
        stop_process(proc)
        raise
    return worker


@contextmanager
def running_worker(
    stack: StackEnv, name: str = "w1", concurrency: int = 2, queues: Sequence[str] = ("celery",)
) -> Iterator[Worker]:
    """A worker consuming `queues` for the duration of the block."""
    worker = start_worker(stack, name, concurrency, queues)
    try:
        yield worker
    finally:
        stop_process(worker.process, timeout=30)


@dataclass(frozen=True)
class StackKeys:
    """The API keys every test API accepts: one per scope set, made fresh per process."""

    full: str  # read and submit
    read_only: str
    submit_only: str

    @classmethod
    def fresh(cls) -> "StackKeys":
        return cls(*(secrets.token_urlsafe(24) for _ in range(3)))

    def env_value(self) -> str:
        """The CELERY_HARDER_API_KEYS value that configures the three."""
        return " ".join(
            [
                entry_for("tests", ["read", "submit"], self.full),
                entry_for("reader", ["read"], self.read_only),
                entry_for("submitter", ["submit"], self.submit_only),
            ]
        )


KEYS = StackKeys.fresh()


@dataclass
class ApiServer:
    """uvicorn serving the FastAPI app; `key` is what its clients send (None: auth off)."""

    url: str
    process: subprocess.Popen[bytes]
    key: str | None = KEYS.full

    def client(self, timeout: float = 10.0, key: str | None = None) -> httpx.Client:
        """A client that sends `key`, by default the full-scope test key."""
        sent = key or self.key
        headers = {HEADER: sent} if sent else {}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)


@contextmanager
def running_api(
    stack: StackEnv, extra_env: dict[str, str] | None = None, auth: bool = True
) -> Iterator[ApiServer]:
    """uvicorn on a free port, ready when /healthz answers.

    With `auth` the API accepts the three KEYS and clients send the full one; without,
    it runs with CELERY_HARDER_API_AUTH=false, as `make dev` does by default.
    """
    port = free_port()
    cmd = [*api_command(BIN, port), "--log-level", "warning"]
    log = stack.workdir / f"api-{port}.log"
    auth_env = (
        {"CELERY_HARDER_API_AUTH": "true", "CELERY_HARDER_API_KEYS": KEYS.env_value()}
        if auth
        else {"CELERY_HARDER_API_AUTH": "false"}
    )
    env = {**stack.env("api"), **auth_env, **(extra_env or {})}
    proc = start_process(cmd, log=log, env=env)
    server = ApiServer(f"http://127.0.0.1:{port}", proc, KEYS.full if auth else None)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"uvicorn exited: {log.read_text()[-2000:]}")
        return httpx.get(server.url + "/healthz", timeout=1).status_code == 200

    try:
        wait_until(healthy, READY_TIMEOUT, "uvicorn")
        yield server
    finally:
        stop_process(proc)
