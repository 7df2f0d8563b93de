"""Daemons that outlive the command that started them, tracked by pid and start time."""

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from celery_harder_dev.cluster.components import Component


@dataclass(frozen=True)
class Daemon:
    """A started process: its pid and its kernel start time, so a reused pid is never hit."""

    name: str
    pid: int
    start_ticks: int
    log: str

    def alive(self) -> bool:
        """Whether this very process still runs (not a later one with the same pid)."""
        return start_ticks(self.pid) == self.start_ticks


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def spawn(component: Component, pid_dir: Path, log_dir: Path) -> Daemon:
    """Start a component in a session of its own, so it outlives the caller; record it."""
    pid_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{component.name}.log"
    env = {**os.environ, **component.env}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            component.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    ticks = start_ticks(process.pid)
    if ticks is None:
        process.wait()
        raise RuntimeError(f"{component.name} exited at once; see {log_path}")
    daemon = Daemon(component.name, process.pid, ticks, str(log_path))
    (pid_dir / f"{component.name}.json").write_text(json.dumps(asdict(daemon)))
    return daemon


def recorded(pid_dir: Path, name: str) -> Daemon | None:
    """The daemon recorded under `name`, if any."""
    try:
        return Daemon(**json.loads((pid_dir / f"{name}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def stop(daemon: Daemon, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    if not daemon.alive():
        return
    _signal(daemon, signal.SIGTERM)
    if _gone_within(daemon, timeout):
        return
    _signal(daemon, signal.SIGKILL)
    if not _gone_within(daemon, 10.0):
        raise RuntimeError(f"{daemon.name} (pid {daemon.pid}) survived SIGKILL")


def _signal(daemon: Daemon, signum: signal.Signals) -> None:
    try:
        os.kill(daemon.pid, signum)
    except ProcessLookupError:
        pass


def _gone_within(daemon: Daemon, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while daemon.alive():
        if time.monotonic() > deadline:
            return False
        _reap(daemon.pid)
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: str | Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
