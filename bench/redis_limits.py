"""B0: the physical limits every queue figure sits under.

`redis-benchmark` LPUSH, LPOP and SET, one command per round trip and 16 pipelined
(-P 16), and a Python loop: redis-py LPUSHes one message at a time while another
process BRPOPs them, the least any Python queue on this Redis can do per message.
"""

import csv
import io
import multiprocessing
import shutil
import subprocess
import time

import redis

from bench.procs import blocking_pop
from bench.sizes import Size
from bench.stats import Figure, Row, ratios
from celery_harder_dev.stack import RedisServer

DB = 9
TESTS = ("LPUSH", "LPOP", "SET")
CLIENTS = 50  # redis-benchmark's default


def redis_benchmark(server: RedisServer, requests: int, pipeline: int) -> dict[str, float]:
    """Requests per second by test name, from one redis-benchmark run."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise FileNotFoundError("no redis-benchmark: apt-get install redis-tools (make test-deps)")
    out = subprocess.run(
        [
            exe, "-h", "127.0.0.1", "-p", str(server.port), "--dbnum", str(DB),
            "-n", str(requests), "-c", str(CLIENTS), "-P", str(pipeline),
            "-t", ",".join(t.lower() for t in TESTS), "--csv",
        ],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    found = {r["test"].split()[0]: float(r["rps"]) for r in rows}
    missing = [t for t in TESTS if t not in found]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no {missing}: {out.stdout[-500:]}")
    return found


def _consume(port: int, messages: int) -> None:
    client = redis.Redis(port=port, db=DB)
    client.lpush("bench:loop-ready", 1)
    for _ in range(messages):
        blocking_pop(client, "bench:loop", 60)
    client.lpush("bench:loop-done", 1)


def python_loop(server: RedisServer, messages: int) -> float:
    """Messages per second through LPUSH (this process) and BRPOP (another process)."""
    client = server.client(DB)
    client.delete("bench:loop", "bench:loop-done", "bench:loop-ready")
    consumer = multiprocessing.get_context("spawn").Process(
        target=_consume, args=(server.port, messages)
    )
    consumer.start()
    try:
        blocking_pop(client, "bench:loop-ready", 60)
        started = time.perf_counter()
        for i in range(messages):
            client.lpush("bench:loop", i)
        blocking_pop(client, "bench:loop-done", 600)
        took = time.perf_counter() - started
    finally:
        consumer.join(30)
        if consumer.is_alive():
            consumer.kill()
    return messages / took


def run(server: RedisServer, size: Size) -> list[Row]:
    samples: dict[str, list[float]] = {}
    for _ in range(size.reps):
        for pipeline in (1, 16):
            for test, rps in redis_benchmark(server, size.redis_requests, pipeline).items():
                samples.setdefault(f"{test} -P {pipeline}", []).append(rps)
        samples.setdefault("loop", []).append(python_loop(server, size.loop_messages))
    base = samples["SET -P 1"]
    rows = []
    for pipeline in (1, 16):
        for test in TESTS:
            key = f"{test} -P {pipeline}"
            label = "no pipelining" if pipeline == 1 else "pipelined, -P 16"
            rows.append(
                Row(
                    "B0",
                    f"redis-benchmark {test}, {label}, {CLIENTS} clients",
                    "req/s",
                    Figure.of(samples[key]),
                    "redis-benchmark SET, no pipelining" if key != "SET -P 1" else "— (baseline)",
                    ratios(samples[key], base) if key != "SET -P 1" else None,
                )
            )
    lpush = samples["LPUSH -P 1"]
    rows.append(
        Row(
            "B0",
            "Python loop: redis-py LPUSH one by one, BRPOP in another process",
            "msg/s",
            Figure.of(samples["loop"]),
            "redis-benchmark LPUSH, no pipelining",
            ratios(samples["loop"], lpush),
            Figure.of(lpush),
        )
    )
    return rows
