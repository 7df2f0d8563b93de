"""T1: `make dev`'s stack comes up, serves a task, says whether it asks for a key, and Ctrl-C
leaves no process behind."""

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from celery_harder_api.auth import entry_for
from celery_harder_dev.dev_stack import AUTH_OFF_WARNING
from celery_harder_dev.local_processes import free_port
from celery_harder_dev.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        path = Path(f"/proc/{current}/task/{current}/children")
        kids = {int(p) for p in path.read_text().split()} if path.exists() else set()
        found |= kids
        todo += list(kids)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


@contextmanager
def dev_stack(
    tmp_path: Path, extra_env: dict[str, str], extra_args: tuple[str, ...] = ()
) -> Iterator[tuple[int, int, str]]:
    """`python -m celery_harder_dev.dev_stack` until its banner; Ctrl-C and checks at the end."""
    api_port, flower_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "CELERY_BROKER_URL",
            "CELERY_HARDER_API_KEYS",
            "CELERY_HARDER_API_AUTH",
            "CELERY_HARDER_DEV_PROMETHEUS",
        )
    }
    log = tmp_path / "dev.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery_harder_dev.dev_stack",
                "--api-port",
                str(api_port),
                "--flower-port",
                str(flower_port),
                "--workdir",
                str(tmp_path / "stack"),
                *extra_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env, **extra_env},
            cwd=ROOT,
        )
    children: set[int] = set()
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log.read_text(), 120, "make dev")
        children = descendants(proc.pid)
        assert len(children) >= 4  # redis, worker (+ pool), uvicorn, flower
        yield api_port, flower_port, log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    leftovers = [pid for pid in children if alive(pid)]
    assert leftovers == [], f"processes left behind: {leftovers}"


def add_through(api: str, headers: dict[str, str]) -> None:
    task_id = httpx.post(f"{api}/add", json={"x": 2, "y": 3}, headers=headers, timeout=10).json()[
        "task_id"
    ]
    results: list[dict] = []
    wait_until(
        lambda: (
            results.append(httpx.get(f"{api}/result/{task_id}", headers=headers, timeout=5).json())
            or results[-1]["state"] == "SUCCESS"
        ),
        30,
        "add via make dev",
    )
    assert results[-1]["result"] == 5


def test_dev_stack_serves_with_auth_off_says_so_and_stops_cleanly(tmp_path: Path) -> None:
    with dev_stack(tmp_path, {}) as (api_port, flower_port, text):
        assert text.startswith(AUTH_OFF_WARNING), text[:500]
        assert f"http://127.0.0.1:{api_port}" in text
        assert f"http://127.0.0.1:{flower_port}" in text
        assert f"(docs http://127.0.0.1:{api_port}/docs)" in text
        assert f"curl -s -X POST http://127.0.0.1:{api_port}/add" in text
        assert re.search(r"Redis\s+redis://127\.0\.0\.1:\d+/0", text)
        add_through(f"http://127.0.0.1:{api_port}", {})
        assert httpx.get(f"http://127.0.0.1:{flower_port}/healthcheck", timeout=5).text == "OK"


def test_dev_stack_asks_for_a_key_when_keys_are_set(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(24)
    keys = {"CELERY_HARDER_API_KEYS": entry_for("me", ["read", "submit"], key)}
    with dev_stack(tmp_path, keys) as (api_port, _flower_port, text):
        assert "API authentication is ON" in text
        assert "OFF" not in text
        assert f"curl -s -X POST http://127.0.0.1:{api_port}/add -H 'X-API-Key: <your key>'" in text
        api = f"http://127.0.0.1:{api_port}"
        assert httpx.post(f"{api}/add", json={"x": 2, "y": 3}, timeout=10).status_code == 401
        add_through(api, {"X-API-Key": key})


def test_dev_stack_with_prometheus_scrapes_itself_with_the_chart_rules(tmp_path: Path) -> None:
    """`make dev PROMETHEUS=1`: celery-exporter and a real Prometheus join the stack."""
    prometheus_port, exporter_port = free_port(), free_port()
    ports = ("--prometheus-port", str(prometheus_port), "--exporter-port", str(exporter_port))
    env = {"CELERY_HARDER_DEV_PROMETHEUS": "1"}
    with dev_stack(tmp_path, env, ports) as (api_port, _flower_port, text):
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        assert f"Prometheus {prometheus}" in text, text
        assert f"Exporter   http://127.0.0.1:{exporter_port}/metrics" in text, text
        assert httpx.get(f"{prometheus}/-/ready", timeout=5).status_code == 200
        targets: list[dict] = []

        def all_up() -> bool:
            body = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()
            targets[:] = body["data"]["activeTargets"]
            return len(targets) == 3 and all(t["health"] == "up" for t in targets)

        wait_until(all_up, 60, "every target up")
        jobs = {t["labels"]["job"] for t in targets}
        assert jobs == {"celery-harder-api", "celery-harder-flower", "celery-harder-exporter"}
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert [r for g in groups for r in g["rules"]], "the chart's rules are not loaded"
        add_through(f"http://127.0.0.1:{api_port}", {})
        query = 'sum(celery_harder_tasks_submitted_total{task="add"})'
        wait_until(
            lambda: (
                httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5).json()[
                    "data"
                ]["result"][0]["value"][1]
                == "1"
            ),
            30,
            "the add counted through Prometheus",
        )
