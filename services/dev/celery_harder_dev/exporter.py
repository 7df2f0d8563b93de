"""celery-exporter (PyPI `prometheus-exporter-celery`) as a separate local process.

The release is the chart's `exporter.image.tag`; `scripts/install-celery-exporter.sh`
installs it in a venv of its own under the tools cache (it pins prometheus-client<0.22
and redis<6 and ships a top-level package named `src`). It is started the way the
image's `/app/cli.py` starts it, with the flags the chart's exporter Deployment passes,
on 127.0.0.1 instead of 0.0.0.0.
"""

import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from celery_harder_dev.cluster.layout import cache_root
from celery_harder_dev.local_processes import start_process, stop_process
from celery_harder_dev.polling import ProcessExited, wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_VALUES = REPO_ROOT / "charts" / "celery-harder" / "values.yaml"
INSTALL_SCRIPT = "scripts/install-celery-exporter.sh"
READY_TIMEOUT = 60.0
# Each /metrics runs two `celery inspect` broadcasts (stats, active_queues) of 1 s each:
# a scrape takes about 2 s, so Prometheus must allow more than that.
SCRAPE_INTERVAL = "4s"
# The image's entry point (`/app/cli.py`), as one -c program.
ENTRY = 'from src.cli import cli; cli(auto_envvar_prefix="CE")'


def chart_exporter_values(values: Path = CHART_VALUES) -> dict[str, str]:
    """The chart's exporter defaults that the local process copies: tag and timings.

    Read from the text (the same way scripts/lib/celery-exporter-version.sh reads the
    tag), so make dev needs no YAML parser; tests compare it with a YAML parse.
    """
    found: dict[str, str] = {}
    inside = False
    for line in values.read_text().splitlines():
        if line.startswith("exporter:"):
            inside = True
            continue
        if inside and line and not line.startswith((" ", "#")):
            break
        match = re.match(r"^ +(tag|workerTimeout|purgeOfflineWorkerMetrics): *(\S+)", line)
        if inside and match and match.group(1) not in found:
            found[match.group(1)] = match.group(2).strip("\"'")
    missing = {"tag", "workerTimeout", "purgeOfflineWorkerMetrics"} - set(found)
    if missing:
        raise ValueError(f"{values}: exporter.{', '.join(sorted(missing))} not found")
    return found


def exporter_version() -> str:
    """The celery-exporter release: the chart's exporter.image.tag."""
    return chart_exporter_values()["tag"]


def exporter_python(version: str | None = None) -> Path:
    """The exporter venv's python, or FileNotFoundError naming the install command."""
    version = version or exporter_version()
    python = cache_root() / "celery-exporter" / version / "venv" / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(
            f"celery-exporter {version} is not installed ({python} missing): "
            f"run `bash {INSTALL_SCRIPT}` (or make test-deps)"
        )
    return python


def exporter_command(
    broker_url: str,
    port: int,
    queues: Sequence[str],
    *,
    worker_timeout: int | None = None,
    purge_offline_worker_metrics: int | None = None,
    visibility_timeout: int = 3600,
    retry_interval: int = 5,
    host: str = "127.0.0.1",
) -> list[str]:
    """The exporter's command line: the chart's flags (timings default to its values)."""
    chart = chart_exporter_values()
    timeout = chart["workerTimeout"] if worker_timeout is None else worker_timeout
    purge = (
        chart["purgeOfflineWorkerMetrics"]
        if purge_offline_worker_metrics is None
        else purge_offline_worker_metrics
    )
    return [
        str(exporter_python(chart["tag"])), "-c", ENTRY,
        f"--broker-url={broker_url}",
        f"--port={port}",
        f"--queues={','.join(queues)}",
        f"--retry-interval={retry_interval}",
        f"--worker-timeout={timeout}",
        f"--purge-offline-worker-metrics={purge}",
        f"--broker-transport-option=visibility_timeout={visibility_timeout}",
        f"--host={host}",
    ]  # fmt: skip


@dataclass
class Exporter:
    """A running celery-exporter; `url` is its base URL (`/metrics`, `/health`)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def start_exporter(
    broker_url: str,
    port: int,
    queues: Sequence[str],
    log: Path,
    *,
    worker_timeout: int | None = None,
    purge_offline_worker_metrics: int | None = None,
    visibility_timeout: int = 3600,
    ready_timeout: float = READY_TIMEOUT,
) -> Exporter:
    """Start the exporter and wait until its /metrics answers 200."""
    cmd = exporter_command(
        broker_url,
        port,
        queues,
        worker_timeout=worker_timeout,
        purge_offline_worker_metrics=purge_offline_worker_metrics,
        visibility_timeout=visibility_timeout,
    )
    # loguru prints every frame's variables (the broker URL with its password) by default.
    proc = start_process(cmd, log=log, env={"LOGURU_DIAGNOSE": "NO", "PYTHONUNBUFFERED": "1"})
    exporter = Exporter(f"http://127.0.0.1:{port}", port, proc, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"celery-exporter exited: {log.read_text()[-2000:]}")
        return httpx.get(exporter.url + "/metrics", timeout=10).status_code == 200

    try:
        wait_until(ready, ready_timeout, "celery-exporter", interval=0.2)
    except BaseException:
        stop_process(proc)
        raise
    return exporter


@contextmanager
def running_exporter(
    broker_url: str,
    port: int,
    queues: Sequence[str],
    log: Path,
    *,
    worker_timeout: int | None = None,
    purge_offline_worker_metrics: int | None = None,
) -> Iterator[Exporter]:
    """A celery-exporter for the duration of the block."""
    exporter = start_exporter(
        broker_url,
        port,
        queues,
        log,
        worker_timeout=worker_timeout,
        purge_offline_worker_metrics=purge_offline_worker_metrics,
    )
    try:
        yield exporter
    finally:
        stop_process(exporter.process)
