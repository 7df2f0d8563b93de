"""T1: `make dev`'s stack comes up, serves a task, and Ctrl-C leaves no process behind."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from celery_harder_dev.local_processes import free_port, wait_until

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


def test_dev_stack_serves_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
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
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log.read_text(), 90, "make dev")
        text = log.read_text()
        assert f"http://127.0.0.1:{api_port}" in text
        assert f"http://127.0.0.1:{flower_port}" in text
        assert f"(docs http://127.0.0.1:{api_port}/docs)" in text
        assert f"curl -s -X POST http://127.0.0.1:{api_port}/add" in text
        assert re.search(r"Redis\s+redis://127\.0\.0\.1:\d+/0", text)
        children = descendants(proc.pid)
        assert len(children) >= 4  # redis, worker (+ pool), uvicorn, flower

        task_id = httpx.post(
            f"http://127.0.0.1:{api_port}/add", json={"x": 2, "y": 3}, timeout=10
        ).json()["task_id"]
        results: list[dict] = []
        wait_until(
            lambda: (
                results.append(
                    httpx.get(f"http://127.0.0.1:{api_port}/result/{task_id}", timeout=5).json()
                )
                or results[-1]["state"] == "SUCCESS"
            ),
            30,
            "add via make dev",
        )
        assert results[-1]["result"] == 5
        assert httpx.get(f"http://127.0.0.1:{flower_port}/healthcheck", timeout=5).text == "OK"
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    leftovers = [pid for pid in children if alive(pid)]
    assert leftovers == [], f"processes left behind: {leftovers}"
