"""Helpers for the T3 image tests: buildah calls, working containers, process trees.

Processes are started from an image's root filesystem with
``buildah run --isolation chroot``, which shares the host's network (so they
listen on loopback) and has no PID namespace (so their PIDs are visible here).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-images.sh"
SERVICES = ("api", "worker", "operator")
IMAGE_REPO = os.environ.get("IMAGE_REPO", "celery-harder")
IMAGE_TAG = os.environ.get("IMAGE_TAG", "dev")
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
APP_UID = 10001
BUILD_TIMEOUT = float(os.environ.get("CELERY_HARDER_IMAGE_BUILD_TIMEOUT", "2400"))

# Filled by the session fixture, printed by pytest_terminal_summary.
REPORT: dict[str, Any] = {}


def image_ref(service: str) -> str:
    return f"localhost/{IMAGE_REPO}/{service}:{IMAGE_TAG}"


def buildah(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("buildah")
    if exe is None:
        pytest.fail("buildah is not installed: scripts/build-images.sh (as root) installs it")
    proc = subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"buildah {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


# --------------------------------------------------------------------------- images


def build_images() -> dict[str, str]:
    """Run scripts/build-images.sh for the three services; service -> image reference."""
    env = dict(os.environ, IMAGE_TAG=IMAGE_TAG, IMAGE_REPO=IMAGE_REPO)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT), *SERVICES],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/build-images.sh did not finish in {BUILD_TIMEOUT:.0f}s: {exc}")
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/build-images.sh exited {proc.returncode}\n"
            f"stderr:\n{proc.stderr[-6000:]}\nstdout:\n{proc.stdout[-2000:]}"
        )
    if shutil.which("buildah") is None:
        pytest.fail("buildah is not installed after scripts/build-images.sh")
    images = {svc: image_ref(svc) for svc in SERVICES}
    sizes = image_sizes()
    REPORT["build_seconds"] = time.monotonic() - start
    REPORT["sizes"] = {ref: sizes.get(ref) for ref in [*images.values(), BASE_IMAGE]}
    return images


_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def parse_size(text: str) -> int:
    """``buildah images`` prints decimal human sizes ("245 MB"); back to bytes."""
    number, unit = text.split()
    return int(float(number) * _UNITS[unit])


def image_sizes() -> dict[str, str]:
    """Image name -> size as ``buildah images`` reports it ("245 MB")."""
    sizes: dict[str, str] = {}
    for entry in json.loads(buildah("images", "--json").stdout or "[]"):
        for name in entry.get("names") or []:
            sizes[name] = str(entry.get("size", ""))
    return sizes


def image_config(image: str) -> dict[str, Any]:
    """The OCI config of a local image (Entrypoint, Cmd, User, Env, Labels...)."""
    return json.loads(buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]


def image_command(image: str, args: Sequence[str] | None = None) -> list[str]:
    """The image's ENTRYPOINT followed by ``args`` (as Kubernetes ``args``) or its CMD."""
    cfg = image_config(image)
    entrypoint = list(cfg.get("Entrypoint") or [])
    return [*entrypoint, *(list(args) if args is not None else list(cfg.get("Cmd") or []))]


# ---------------------------------------------------------------------- processes


def ppid_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if ppid_of(int(entry)) == pid:
                    kids.append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    """Descendants of ``pid``, parents before their children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        for kid in children(todo.pop(0)):
            out.append(kid)
            todo.append(kid)
    return out


def namespace_pids(pid: int) -> list[int]:
    """The ``NSpid`` line of /proc/PID/status: the PID in each nested PID namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return [pid]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass
class RunningProcess:
    """A process started with ``buildah run`` in a working container."""

    argv: list[str]
    popen: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def entrypoint_pid(self) -> int:
        """PID of the image's process: the first descendant that is no buildah helper."""
        for pid in descendants(self.popen.pid):
            argv = cmdline(pid)
            if argv and not Path(argv[0]).name.startswith("buildah"):
                return pid
        raise LookupError("entrypoint process not found (yet)")

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- output of {' '.join(self.argv)} ---\n{self.output()[-6000:]}")

    def stop(self, timeout: float = 20) -> int | None:
        if self.popen.poll() is not None:
            return self.popen.returncode
        with contextlib.suppress(ProcessLookupError, LookupError):
            os.kill(self.entrypoint_pid(), signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # buildah, its helpers and the entrypoint share the session made for buildah run.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.wait(timeout=10)


def _container_name() -> str:
    return f"celery-harder-t3-{uuid.uuid4().hex[:10]}"


def _logdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="celery-harder-t3-"))


@dataclass
class WorkingContainer:
    """``buildah from`` an image; ``close()`` stops its processes and ``buildah rm``s it."""

    image: str
    name: str = field(default_factory=_container_name)
    processes: list[RunningProcess] = field(default_factory=list)
    logdir: Path = field(default_factory=_logdir)
    mountpoint: Path | None = None

    def __post_init__(self) -> None:
        buildah("from", "--pull-never", "--name", self.name, self.image)

    def _run_argv(self, argv: Sequence[str], env: dict[str, str] | None) -> list[str]:
        cmd = [shutil.which("buildah") or "buildah", "run", "--isolation", "chroot"]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        return [*cmd, self.name, "--", *argv]

    def exec(
        self, argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run a command to completion in the container."""
        return subprocess.run(
            self._run_argv(argv, env), capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> RunningProcess:
        """Start a long-running command in the container, output to a log file."""
        log_path = self.logdir / f"proc-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                self._run_argv(argv, env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = RunningProcess(list(argv), popen, log_path)
        self.processes.append(proc)
        return proc

    def start_as_pid1(
        self, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> RunningProcess:
        """Start ``argv`` as PID 1 of a new PID namespace over the image's root filesystem.

        What a container runtime does, minus cgroups: new PID and mount namespaces,
        /proc and /dev mounted, chroot, the image's User, WorkingDir and Env. The
        mounts live in the private mount namespace and vanish with it. The exec
        chain (sh -> chroot -> env -> argv) keeps one PID, so argv ends up as PID 1.
        """
        root = self.mount()
        cfg = image_config(self.image)
        user = cfg.get("User") or "0:0"
        workdir = cfg.get("WorkingDir") or "/"
        assignments = [*cfg.get("Env", []), *(f"{k}={v}" for k, v in (env or {}).items())]
        script = (
            'root="$1" user="$2" workdir="$3"; shift 3; '
            'mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && '
            'exec chroot --userspec="$user" "$root" /usr/bin/env -i --chdir="$workdir" "$@"'
        )
        cmd = [
            shutil.which("unshare") or "unshare",
            "--mount", "--pid", "--fork", "--propagation", "private", "--",
            "/bin/sh", "-c", script, "sh", str(root), user, workdir, *assignments, *argv,
        ]  # fmt: skip
        log_path = self.logdir / f"proc-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = RunningProcess(list(argv), popen, log_path)
        self.processes.append(proc)
        return proc

    def mount(self) -> Path:
        if self.mountpoint is None:
            self.mountpoint = Path(buildah("mount", self.name).stdout.strip())
        return self.mountpoint

    def close(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(Exception):
                proc.stop()
        if self.mountpoint is not None:
            buildah("umount", self.name, check=False)
        buildah("rm", self.name, check=False)
        shutil.rmtree(self.logdir, ignore_errors=True)
