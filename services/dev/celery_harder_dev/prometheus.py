"""A real Prometheus server on loopback (Debian's `prometheus`), and its HTTP API.

The config has static targets labelled the way the chart's ServiceMonitors label them
in a cluster: `job` is the Service's name (`<release>-<component>`), plus `namespace`,
`service`, `endpoint`, `cluster`. It loads rule files (the chart's PrometheusRule spec,
rendered by helm: celery_harder_dev.chart_monitoring) and scrapes every second.
"""

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from celery_harder_dev.local_processes import free_port, start_process, stop_process
from celery_harder_dev.polling import ProcessExited, wait_until

READY_TIMEOUT = 60.0
INSTALL_HINT = "apt-get install prometheus (or: bash scripts/install-test-deps.sh)"


def find_prometheus() -> str:
    """The prometheus server binary (Debian's package), or FileNotFoundError with the fix."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if not found:
        raise FileNotFoundError(f"no prometheus server binary: {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class ScrapeTarget:
    """One scraped endpoint: `job` is the Service name a ServiceMonitor would give."""

    job: str
    address: str  # host:port
    labels: dict[str, str] = field(default_factory=dict)
    path: str = "/metrics"
    honor_labels: bool = False  # the chart's exporter ServiceMonitor sets honorLabels
    # None: the global interval. celery-exporter needs about 2 s per scrape (two
    # `inspect` broadcasts, 1 s timeout each), so it gets a slower one.
    interval: str | None = None


def target_labels(
    job: str, namespace: str, cluster: str = "local", endpoint: str = "http"
) -> dict[str, str]:
    """What a ServiceMonitor target carries in a cluster (pod/instance aside)."""
    return {
        "namespace": namespace,
        "service": job,
        "endpoint": endpoint,
        "cluster": cluster,
    }


def prometheus_config(
    targets: Sequence[ScrapeTarget],
    rule_files: Sequence[Path] = (),
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> dict[str, Any]:
    """A prometheus.yml: one scrape job per target, static, on loopback."""
    jobs: list[dict[str, Any]] = []
    for target in targets:
        job: dict[str, Any] = {
            "job_name": target.job,
            "metrics_path": target.path,
            "scrape_interval": target.interval or scrape_interval,
            "scrape_timeout": target.interval or scrape_interval,
            "static_configs": [{"targets": [target.address], "labels": dict(target.labels)}],
        }
        if target.honor_labels:
            job["honor_labels"] = True
        jobs.append(job)
    if len({j["job_name"] for j in jobs}) != len(jobs):
        raise ValueError(f"duplicate job names: {[j['job_name'] for j in jobs]}")
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": jobs,
    }


class PrometheusError(RuntimeError):
    """An error answer of the HTTP API; `error_type` is Prometheus' (`bad_data`, ...)."""

    def __init__(self, error_type: str, error: str) -> None:
        super().__init__(f"{error_type}: {error}")
        self.error_type = error_type
        self.error = error


@dataclass
class Prometheus:
    """A running server and the parts of its HTTP API the tests read."""

    url: str
    process: subprocess.Popen[bytes]
    config: Path
    log: Path

    def _get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(body.get("errorType", "?"), body.get("error", response.text))
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result as a list of series (a scalar becomes one series)."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of a query that yields one series (None when it yields none)."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) != 1:
            raise AssertionError(f"{expr} gave {len(result)} series: {result}")
        return float(result[0]["value"][1])

    def parse_error(self, expr: str) -> str | None:
        """Prometheus' own parser on `expr`: the bad_data message, or None when it parses."""
        try:
            self._get("/api/v1/query", query=expr)
        except PrometheusError as exc:
            if exc.error_type == "bad_data":
                return exc.error
            raise
        return None

    def targets(self) -> list[dict[str, Any]]:
        """The active targets (labels, health, lastError)."""
        active: list[dict[str, Any]] = self._get("/api/v1/targets", state="active")["activeTargets"]
        return active

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups with each rule's health and lastError."""
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return groups

    def metric_names(self) -> set[str]:
        """Every metric name in the TSDB (`__name__` values)."""
        return set(self._get("/api/v1/label/__name__/values"))

    def wait_targets_up(self, jobs: Sequence[str], timeout: float = 60) -> None:
        """Until every job has been scraped successfully (`up == 1`)."""

        def all_up() -> bool:
            up = {r["metric"]["job"]: r["value"][1] for r in self.query("up")}
            return all(up.get(job) == "1" for job in jobs)

        wait_until(all_up, timeout, f"targets up: {', '.join(jobs)}", interval=0.2)


def write_config(
    workdir: Path,
    targets: Sequence[ScrapeTarget],
    rule_files: Sequence[Path] = (),
    scrape_interval: str = "1s",
) -> Path:
    """prometheus.yml in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(prometheus_config(targets, rule_files, scrape_interval, scrape_interval))
    )
    return config


def prometheus_command(config: Path, workdir: Path, port: int) -> list[str]:
    """The server on 127.0.0.1:`port`, its TSDB under `workdir`."""
    return [
        find_prometheus(),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def is_ready(url: str) -> bool:
    """Whether the server at `url` answers /-/ready with 200."""
    return httpx.get(url + "/-/ready", timeout=2).status_code == 200


@contextmanager
def running_prometheus(
    workdir: Path,
    targets: Sequence[ScrapeTarget],
    rule_files: Sequence[Path] = (),
    port: int | None = None,
    scrape_interval: str = "1s",
) -> Iterator[Prometheus]:
    """Prometheus on 127.0.0.1:`port` (a free one by default), TSDB in `workdir`."""
    config = write_config(workdir, targets, rule_files, scrape_interval)
    port = port or free_port()
    log = workdir / "prometheus.log"
    proc = start_process(prometheus_command(config, workdir, port), log=log, cwd=workdir)
    server = Prometheus(f"http://127.0.0.1:{port}", proc, config, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"prometheus exited: {log.read_text()[-3000:]}")
        return is_ready(server.url)

    try:
        wait_until(ready, READY_TIMEOUT, "prometheus", interval=0.2)
        yield server
    finally:
        stop_process(proc)
