"""`make dev`: Redis (embedded unless CELERY_BROKER_URL is set), a worker, the API and Flower.

With `--prometheus` (`make dev PROMETHEUS=1`, or CELERY_HARDER_DEV_PROMETHEUS=1) it also
starts celery-exporter (scripts/install-celery-exporter.sh) and a real Prometheus
(Debian's `prometheus`) that scrapes the API, Flower, the exporter and, given
`--operator-metrics HOST:PORT`, an operator, with the chart's alert rules loaded
(rendered by helm: `make tools`).

Runs in the foreground; Ctrl-C (SIGINT) or SIGTERM stops every child it started.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from celery_harder_dev.chart_monitoring import render_monitoring, scrape_targets, write_rule_file
from celery_harder_dev.exporter import exporter_command
from celery_harder_dev.local_processes import (
    api_command,
    flower_command,
    free_port,
    port_open,
    redis_command,
    start_process,
    stop_process,
    worker_command,
)
from celery_harder_dev.polling import ProcessExited, wait_until
from celery_harder_dev.prometheus import prometheus_command, write_config

BIN = Path(sys.executable).parent
READY_TIMEOUT = 60.0


class Stack:
    """The children started so far, stopped in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = start_process(cmd, log=self.workdir / f"{name}.log", env=env, cwd=self.workdir)
        self.children.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                raise ProcessExited(f"{name} exited with {proc.returncode}; see {name}.log")

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            stop_process(proc, timeout=30)


def wait_http(stack: Stack, url: str, what: str, request_timeout: float = 1.0) -> None:
    def ok() -> bool:
        stack.check_alive()
        return httpx.get(url, timeout=request_timeout).status_code == 200

    wait_until(ok, READY_TIMEOUT, what, interval=0.2)


AUTH_OFF_WARNING = """\
!!! API authentication is OFF: anyone who reaches the API can run tasks.
!!! make dev turns it off unless CELERY_HARDER_API_KEYS is set; to turn it on:
!!!   python -m celery_harder_api.auth me read,submit   # prints a key and its entry
!!!   CELERY_HARDER_API_KEYS='<entry>' make dev"""


def api_auth_env(environ: dict[str, str]) -> dict[str, str]:
    """The API's auth setting under make dev: on exactly when keys are configured."""
    enabled = bool(environ.get("CELERY_HARDER_API_KEYS", "").strip())
    return {"CELERY_HARDER_API_AUTH": "true" if enabled else "false"}


def auth_banner(auth_env: dict[str, str]) -> str:
    """The loud line(s) that say whether the API asks for a key."""
    if auth_env["CELERY_HARDER_API_AUTH"] == "true":
        return "API authentication is ON: send a key from CELERY_HARDER_API_KEYS as X-API-Key."
    return AUTH_OFF_WARNING


def print_banner(
    workdir: Path,
    api: str,
    flower: str,
    broker: str,
    auth_env: dict[str, str],
    monitoring: list[str] | None = None,
) -> None:
    """Where everything is, and one request to paste."""
    body = '{"x": 2, "y": 3}'
    key = " -H 'X-API-Key: <your key>'" if auth_env["CELERY_HARDER_API_AUTH"] == "true" else ""
    lines = [
        f"celery-harder is up (logs in {workdir}):",
        f"  API     {api}  (docs {api}/docs)",
        f"  Flower  {flower}",
        f"  Redis   {broker}",
        *(monitoring or []),
        auth_banner(auth_env),
        "Try:",
        f"  curl -s -X POST {api}/add{key} -H 'Content-Type: application/json' -d '{body}'",
        f"  curl -s{key} {api}/result/<task_id>",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def start_monitoring(
    stack: Stack, ns: argparse.Namespace, broker: str, api: str, flower: str
) -> list[str]:
    """celery-exporter and Prometheus over the stack; the banner lines that say where."""
    prom_dir = stack.workdir / "prometheus"
    prom_dir.mkdir(parents=True, exist_ok=True)
    objects = render_monitoring()
    rules = write_rule_file(objects, prom_dir / "chart-rules.yaml")
    exporter = f"http://127.0.0.1:{ns.exporter_port}"
    queues = [q for q in os.environ.get("CELERY_HARDER_QUEUES", "celery").split(",") if q]
    stack.start(
        "exporter",
        exporter_command(broker, ns.exporter_port, queues),
        {"LOGURU_DIAGNOSE": "NO", "PYTHONUNBUFFERED": "1"},
    )
    urls = {"api": api, "flower": flower, "exporter": exporter}
    if ns.operator_metrics:
        urls["operator"] = f"http://{ns.operator_metrics}"
    config = write_config(prom_dir, scrape_targets(objects, urls), [rules])
    stack.start("prometheus", prometheus_command(config, prom_dir, ns.prometheus_port), {})
    prometheus = f"http://127.0.0.1:{ns.prometheus_port}"
    # Its /metrics runs two `inspect` broadcasts of 1 s each before it answers.
    wait_http(stack, exporter + "/metrics", "celery-exporter", request_timeout=10)
    wait_http(stack, prometheus + "/-/ready", "Prometheus")
    return [
        f"  Prometheus {prometheus}  (targets {prometheus}/targets, alerts {prometheus}/alerts)",
        f"  Exporter   {exporter}/metrics",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """make dev's options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--flower-port", type=int, default=5555)
    parser.add_argument("--workdir", type=Path, default=Path("dev-stack"))
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--prometheus",
        action="store_true",
        default=os.environ.get("CELERY_HARDER_DEV_PROMETHEUS", "") not in ("", "0"),
        help="also run celery-exporter and Prometheus (CELERY_HARDER_DEV_PROMETHEUS=1)",
    )
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--exporter-port", type=int, default=9808)
    parser.add_argument(
        "--operator-metrics",
        default=os.environ.get("CELERY_HARDER_DEV_OPERATOR_METRICS", ""),
        metavar="HOST:PORT",
        help="an operator's /metrics for Prometheus to scrape too",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    workdir = ns.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    env = {
        "CELERY_HARDER_DATA_DIR": str(workdir / "data"),
        "CELERY_HARDER_HEARTBEAT_FILE": str(workdir / "worker.heartbeat"),
    }
    auth_env = api_auth_env(dict(os.environ))
    print(auth_banner(auth_env), flush=True)
    try:
        broker = os.environ.get("CELERY_BROKER_URL")
        if not broker:
            port = 6379 if not port_open(6379) else free_port()
            stack.start("redis", redis_command(port, workdir), env)
            broker = f"redis://127.0.0.1:{port}/0"
            wait_until(lambda: port_open(port), READY_TIMEOUT, "redis-server")
        env["CELERY_BROKER_URL"] = broker
        stack.start("worker", worker_command(BIN, ns.concurrency), env)
        stack.start("api", api_command(BIN, ns.api_port), {**env, **auth_env})
        stack.start("flower", flower_command(BIN, ns.flower_port), env)
        api = f"http://127.0.0.1:{ns.api_port}"
        flower = f"http://127.0.0.1:{ns.flower_port}"
        wait_http(stack, api + "/readyz", "API")
        wait_http(stack, flower + "/healthcheck", "Flower")
        heartbeat = workdir / "worker.heartbeat"

        def worker_ready() -> bool:
            stack.check_alive()  # a worker that died fails the wait at once
            return bool(heartbeat.exists())

        wait_until(worker_ready, READY_TIMEOUT, "worker")
        monitoring = start_monitoring(stack, ns, broker, api, flower) if ns.prometheus else None
        print_banner(workdir, api, flower, broker, auth_env, monitoring)
        while not stopping:
            stack.check_alive()
            time.sleep(0.5)  # supervision tick, not synchronisation
    except (ProcessExited, TimeoutError, FileNotFoundError, RuntimeError) as exc:
        print(f"make dev: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopping…", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
