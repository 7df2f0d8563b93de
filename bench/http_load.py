"""B1: POST /add against a bare FastAPI + one LPUSH endpoint and a hello-world, with hey.

All three are served by uvicorn with the API's command line, on one core's worth of
the machine each in turn; hey (Debian's) sends the same POST with the same JSON body.
The API runs with auth off (as `make dev` does) and sends to a Redis database no
worker consumes, so that the submit path alone is measured; each repetition empties it.
Also B7's API side: RSS idle and after the load, against the hello-world's, and the
floor under it: the hello-world with the API's libraries loaded (bench/apps/libraries.py).
"""

import csv
import io
import math
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.procs import serving, tree_rss_mib
from bench.sizes import Size
from bench.stats import Figure, Results, Row, add_rss_rows, check, ratios
from celery_harder_dev.stack import IDLE_DB, RedisServer, StackEnv, running_api

BODY = '{"x": 1, "y": 2}'
WARMUP = 100


@dataclass(frozen=True)
class HeyRun:
    rps: float
    p50_ms: float
    p99_ms: float


def find_hey() -> str:
    found = shutil.which("hey")
    if found is None:
        raise FileNotFoundError("no hey on PATH: run `make load-tools` (Debian package hey)")
    return found


def parse_hey(out: str, status: int) -> HeyRun:
    """Throughput and latency percentiles from hey's per-request CSV (`-o csv`).

    RuntimeError unless every request was answered with `status`.
    """
    rows = list(csv.DictReader(io.StringIO(out)))
    if not rows:
        raise RuntimeError(f"hey printed no requests: {out[-1500:]}")
    codes = Counter(r["status-code"] for r in rows)
    if set(codes) != {str(status)}:
        raise RuntimeError(f"hey saw answers other than {status}: {dict(codes)}")
    times = sorted(float(r["response-time"]) for r in rows)
    took = max(float(r["offset"]) + float(r["response-time"]) for r in rows)
    return HeyRun(len(rows) / took, 1000 * percentile(times, 50), 1000 * percentile(times, 99))


def percentile(ordered: list[float], pct: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def hey(url: str, requests: int, clients: int, status: int) -> HeyRun:
    cmd = [
        find_hey(), "-n", str(requests), "-c", str(clients), "-t", "60",
        "-o", "csv", "-m", "POST", "-T", "application/json", "-d", BODY, url + "/add",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    try:
        return parse_hey(out.stdout, status)
    except RuntimeError as exc:
        raise RuntimeError(f"{url}: {exc}") from exc


def run(server: RedisServer, workdir: Path, size: Size) -> Results:
    idle = StackEnv(broker_url=server.url(IDLE_DB), workdir=workdir / "b1")
    idle.workdir.mkdir(parents=True, exist_ok=True)
    env = {"CELERY_BROKER_URL": server.url(IDLE_DB)}
    results = Results()
    with (
        running_api(idle, auth=False) as api,
        serving("bench.apps.bare:create_app", idle.workdir, env) as bare,
        serving("bench.apps.hello:create_app", idle.workdir, env) as hello,
        serving("bench.apps.libraries:create_app", idle.workdir, env) as libraries,
    ):
        apps: dict[str, tuple[str, int]] = {
            "api": (api.url, 202), "bare": (bare.url, 202), "hello": (hello.url, 202),
        }  # fmt: skip
        pids = {
            "api": api.process.pid, "hello": hello.process.pid,
            "libraries": libraries.process.pid,
        }  # fmt: skip
        rss_idle = {
            name: [tree_rss_mib(pid) for _ in range(size.reps)] for name, pid in pids.items()
        }
        for url, status in apps.values():
            hey(url, WARMUP, 8, status)
        runs: dict[tuple[str, int], list[HeyRun]] = {}
        for _ in range(size.reps):
            for clients in size.clients:
                for name, (url, status) in apps.items():
                    server.client(IDLE_DB).flushdb()
                    runs.setdefault((name, clients), []).append(
                        hey(url, size.http_requests, clients, status)
                    )
        server.client(IDLE_DB).flushdb()
        rss_after = {
            name: [tree_rss_mib(pid) for _ in range(size.reps)] for name, pid in pids.items()
        }
    for clients in size.clients:
        api_runs, bare_runs, hello_runs = (runs[(n, clients)] for n in ("api", "bare", "hello"))
        for attr, unit, label in (("rps", "req/s", "req/s"), ("p50_ms", "ms", "p50"),
                                  ("p99_ms", "ms", "p99")):  # fmt: skip
            a = [getattr(r, attr) for r in api_runs]
            b = [getattr(r, attr) for r in bare_runs]
            results.rows.append(
                Row(
                    "B1",
                    f"POST /add {label}, {clients} clients",
                    unit,
                    Figure.of(a),
                    "bare FastAPI + one LPUSH",
                    ratios(a, b),
                    Figure.of(b),
                )
            )
        b = [r.rps for r in bare_runs]
        h = [r.rps for r in hello_runs]
        results.rows.append(
            Row(
                "B1",
                f"bare FastAPI + one LPUSH req/s, {clients} clients",
                "req/s",
                Figure.of(b),
                "FastAPI hello-world",
                ratios(b, h),
                Figure.of(h),
            )
        )
        results.rows.append(
            Row(
                "B1",
                f"FastAPI hello-world req/s, {clients} clients",
                "req/s",
                Figure.of(h),
                "— (the ceiling)",
                None,
            )
        )
        ratio = ratios([r.rps for r in api_runs], b)
        results.targets.append(
            check(
                "B1",
                f"POST /add req/s at {clients} clients ≥ 0.6× bare",
                ratio,
                "×",
                lambda x: x >= 0.6,
            )
        )
    add_rss_rows(
        results,
        ("API RSS", "API RSS"),
        ("plain uvicorn hello-world", "hello-world"),
        [
            (when, rss["api"], rss["hello"])
            for when, rss in (("idle", rss_idle), ("after B1", rss_after))
        ],
    )
    results.rows.append(
        Row(
            "B7",
            "the API's libraries alone (the hello-world importing every module the API "
            "loads but this project's), idle",
            "MiB",
            Figure.of(rss_idle["libraries"]),
            "plain uvicorn hello-world, idle",
            ratios(rss_idle["libraries"], rss_idle["hello"]),
            Figure.of(rss_idle["hello"]),
        )
    )
    results.notes.append(
        f"B1: hey -n {size.http_requests} -c C -m POST, body {BODY}, after {WARMUP} warm-up "
        "requests per app; the API with auth off, sending to a Redis database no worker "
        "consumes (emptied before every hey run). The three apps are served by the same "
        "uvicorn command line (`uvicorn APP --factory --host 127.0.0.1 --log-level warning`, "
        "one process). The hello-world answers POST /add without reading the body."
    )
    return results
