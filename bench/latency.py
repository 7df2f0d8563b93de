"""B3: enqueue-to-start, one task at a time, against raw Celery and a raw BRPOP loop.

Each task records its own start: celery-harder's workers write it before every task
body (celery_harder.keys.STARTED, what a workflow's status shows); the raw Celery
task returns time.time() as its result; the BRPOP consumer answers with the time
right after BRPOP. Enqueue time is time.time() just before the submit call, so the
figure includes the client's submit cost. A trial ends when the task's result is
stored (Celery publishes each stored state on its key's channel), so trials never
overlap. All on one machine: one clock. Raw Celery's client runs in a child process
(bench/apps/raw_celery_client.py), unpatched by celery-harder's client apps.
"""

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import redis
from celery import Celery

from bench.apps import raw_brpop
from bench.procs import (
    PYTHON,
    ROOT,
    bench_env,
    blocking_pop,
    raw_celery_worker,
    running_program,
    wait_for,
)
from bench.sizes import Size
from bench.stats import Figure, Results, Row, check, ratios
from celery_harder import keys
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder_dev.stack import RedisServer, StackEnv, running_worker

RAW_DB, BRPOP_DB = 5, 6
TRIAL_TIMEOUT = 60.0


def wait_stored(pubsub: redis.client.PubSub, channel: str) -> dict[str, object]:
    """The first SUCCESS meta published on `channel` (RuntimeError on any other end state)."""
    deadline = time.monotonic() + TRIAL_TIMEOUT
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if not message or message["type"] != "pmessage":
            continue
        if message["channel"].decode() != channel:
            continue
        meta: dict[str, object] = json.loads(message["data"])
        if meta["status"] == "SUCCESS":
            return meta
        if meta["status"] in ("FAILURE", "REVOKED"):
            raise RuntimeError(f"{channel}: {meta}")
    raise TimeoutError(f"no result on {channel} after {TRIAL_TIMEOUT:.0f}s")


def celery_harder_trials(server: RedisServer, trials: int) -> Callable[[], list[float]]:
    client = create_task_client(Settings(broker_url=server.url(0)))
    pubsub = server.client(0).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.psubscribe("celery-task-meta-*")

    def run() -> list[float]:
        took = []
        for _ in range(trials):
            enqueued = time.time()
            task_id = client.submit("add", [1, 1])
            wait_stored(pubsub, client.meta_key(task_id).decode())
            raw = client.results.get(keys.STARTED + task_id)
            if not isinstance(raw, bytes):
                raise RuntimeError(f"{task_id} ran without a start mark")
            took.append(datetime.fromisoformat(raw.decode()).timestamp() - enqueued)
        return took

    return run


def run_raw_celery_trials(url: str) -> Callable[[int], list[float]]:
    """Raw Celery's trials on `url`, run where they are called (the raw client's process)."""
    app = Celery("raw_client", broker=url, backend=url)
    pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.psubscribe("celery-task-meta-*")

    def run(trials: int) -> list[float]:
        took = []
        for _ in range(trials):
            enqueued = time.time()
            result = app.send_task("raw.started_at")
            meta = wait_stored(pubsub, f"celery-task-meta-{result.id}")
            took.append(float(meta["result"]) - enqueued)  # type: ignore[arg-type]
        return took

    return run


def raw_celery_trials(server: RedisServer, trials: int) -> Callable[[], list[float]]:
    """Raw Celery's trials in a child process (bench.apps.raw_celery_client): never in
    this one, whose celery-harder client patches kombu."""
    cmd = [PYTHON, "-m", "bench.apps.raw_celery_client", server.url(RAW_DB), str(trials)]

    def run() -> list[float]:
        out = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **bench_env()},
            cwd=ROOT, timeout=TRIAL_TIMEOUT * 2, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"raw Celery client failed: {out.stderr[-2000:]}")
        took: list[float] = json.loads(out.stdout)
        return took

    return run


def brpop_trials(server: RedisServer, trials: int) -> Callable[[], list[float]]:
    client = server.client(BRPOP_DB)

    def run() -> list[float]:
        took = []
        for _ in range(trials):
            enqueued = time.time()
            client.lpush(raw_brpop.QUEUE, repr(enqueued))
            answer = blocking_pop(client, raw_brpop.ANSWERS, TRIAL_TIMEOUT)
            took.append(float(answer) - enqueued)
        return took

    return run


def run(server: RedisServer, workdir: Path, size: Size) -> Results:
    stack = StackEnv(broker_url=server.url(0), workdir=workdir / "b3")
    stack.workdir.mkdir(parents=True, exist_ok=True)
    brpop_client = server.client(BRPOP_DB)
    brpop_client.delete(raw_brpop.QUEUE, raw_brpop.ANSWERS)
    with (
        running_worker(stack, "b3", concurrency=size.concurrency),
        running_program(
            raw_celery_worker(server.url(RAW_DB), size.concurrency), "raw-celery-b3",
            stack.workdir, {"BENCH_REDIS_URL": server.url(RAW_DB)},
        ) as raw_worker,
        running_program(
            [PYTHON, "-m", "bench.apps.raw_brpop", server.url(BRPOP_DB)], "raw-brpop",
            stack.workdir,
        ) as consumer,
    ):  # fmt: skip

        def brpop_ready() -> bool:
            consumer.check()
            return brpop_client.rpop(raw_brpop.ANSWERS) == b"ready"

        wait_for(brpop_ready, "the BRPOP consumer")
        runners = {
            "celery-harder": celery_harder_trials(server, size.trials),
            "raw Celery": raw_celery_trials(server, size.trials),
            "raw BRPOP": brpop_trials(server, size.trials),
        }
        raw_worker.check()
        for trials in runners.values():  # warm-up: connections, imports, a worker still starting
            trials()
        medians: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(size.reps):
            for name, trials in runners.items():
                medians[name].append(1000 * statistics.median(trials()))
        brpop_client.lpush(raw_brpop.QUEUE, raw_brpop.STOP)
    ch, raw, floor = medians["celery-harder"], medians["raw Celery"], medians["raw BRPOP"]
    what = f"enqueue-to-start, median of {size.trials} sequential trials"
    results = Results()
    results.rows += [
        Row("B3", f"{what}: celery-harder (TaskClient.submit → task start)", "ms",
            Figure.of(ch), "raw Celery", ratios(ch, raw), Figure.of(raw)),
        Row("B3", f"{what}: raw Celery (send_task, default settings)", "ms",
            Figure.of(raw), "raw BRPOP loop", ratios(raw, floor), Figure.of(floor)),
        Row("B3", f"{what}: raw BRPOP loop (LPUSH → BRPOP in another process)", "ms",
            Figure.of(floor), "— (the floor)", None),
    ]  # fmt: skip
    results.targets += [
        check("B3", "enqueue-to-start median ≤ 3 ms", Figure.of(ch), " ms", lambda x: x <= 3),
        check("B3", "enqueue-to-start ≤ 0.5× raw Celery", ratios(ch, raw), "×",
              lambda x: x <= 0.5),
    ]  # fmt: skip
    results.notes.append(
        f"B3: {size.trials} trials per repetition and system, one task in flight at a time "
        f"(the next is sent once the previous result is stored), after one round of warm-up. "
        f"Both workers prefork with {size.concurrency} processes; raw Celery on its own Redis "
        "database of the same server, its client in a process of its own that imports no "
        "celery-harder app (bench/apps/raw_celery_client.py: the client apps' kombu patch "
        "would speed its sends up too), with 20 warm-up trials per run."
    )
    return results
