"""B2: drain N pre-loaded no-op tasks at one fixed total concurrency, and B7's worker side.

Every system runs its worker with the same total concurrency (prefork processes,
Dramatiq processes × 1 thread, taskiq workers × 1 async task). Per repetition each
worker, idle and consuming, is stopped (SIGSTOP to its process group), N messages are
loaded into its real queue, and the clock runs from SIGCONT until the harness sees
the queue drained:

- celery-harder: the queue and the pool's unacked hash are empty (acks are late: a
  task is acknowledged once done), and with results every task's start mark
  (keys.STARTED) exists; without, a task that stores nothing in Redis (neither mark
  nor result), a sentinel sent last has stored its result;
- raw Celery with results: every result reads SUCCESS;
- systems without results: a sentinel task sent last has run, and the queue is empty
  (at most the messages other processes had prefetched may still be finishing).

Celery messages are built once by the system's own client (send_task) and copied
with fresh task ids and delivery tags; peers enqueue through their own API.
"""

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from background.unacked import ACK_FLUSH_DELAY
from bench.procs import (
    ROOT,
    bench_env,
    raw_celery_worker,
    running_program,
    tree_rss_mib,
    wait_for,
)
from bench.sizes import Size
from bench.stats import Figure, Results, Row, add_rss_rows, check, ratios
from celery_harder import keys
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder_dev.stack import RedisServer, StackEnv, running_worker

CH_DB, RAW_DB, DRAMATIQ_DB, TASKIQ_DB, CH_FAST_DB = 10, 11, 12, 13, 14
# The one guarantee the default worker's drain path narrows (background/unacked.py).
ACK_BATCH_NOTE = (
    f"acks written in batches every {ACK_FLUSH_DELAY * 1000:.0f} ms: a worker killed "
    "within that time of a task's end leaves it to come back after the visibility timeout "
    "(skipped if its SUCCESS is stored, run again if it stores none; docs/reliability.md)"
)
# The fast profile's worker (docs/reliability.md): a row of its own, never the default's.
FAST_ENV = {"CELERY_HARDER_WORKER_PROFILE": "fast"}
FAST_LABEL = (
    "celery-harder FAST PROFILE (workers[].profile: fast; acks early, prefetch 16, "
    "no STARTED; not the default), results stored"
)
TOOLS_SCRIPT = ROOT / "scripts" / "install-bench-tools.sh"
DRAIN_TIMEOUT = 1800.0
POLL = 0.01
CHUNK = 1000
WARMUP = 20
# As bench.peers' modules name them (they import Dramatiq and taskiq: not importable here).
SENTINEL = "bench:sentinel"
DRAMATIQ_QUEUE, TASKIQ_QUEUE = "dramatiq:default", "taskiq"


def install_tools() -> str:
    """hey, redis-benchmark and the peers' venv, installed if need be; the peers' python."""
    out = subprocess.run(
        ["bash", str(TOOLS_SCRIPT)], capture_output=True, text=True, check=False, timeout=1800
    )
    if out.returncode:
        raise RuntimeError(f"{TOOLS_SCRIPT.name} failed: {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def peer_versions(python: str) -> str:
    code = (
        "import importlib.metadata as m;"
        "print(', '.join(f'{p} {m.version(p)}' for p in ('dramatiq', 'taskiq', 'taskiq-redis')))"
    )
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


@dataclass
class System:
    """One worker under test: how to load N tasks into it and how to tell it is done."""

    name: str
    pid: int  # its process group leader
    load: Callable[[int], Callable[[], bool]]  # returns the done check
    check_alive: Callable[[], None]

    def drain(self, count: int) -> float:
        self.check_alive()
        os.killpg(self.pid, signal.SIGSTOP)
        try:
            done = self.load(count)
        finally:
            started = time.perf_counter()
            os.killpg(self.pid, signal.SIGCONT)
        wait_for(done, f"{self.name} drain of {count}", DRAIN_TIMEOUT)
        took = time.perf_counter() - started
        return took


def celery_messages(
    app: Celery, name: str, queue: str, count: int, ignore_result: bool, client: redis.Redis
) -> tuple[list[str], list[str]]:
    """`count` copies of one message built by `app.send_task`, each with fresh ids."""
    template_queue = f"bench-template-{uuid.uuid4()}"
    app.send_task(name, args=[1, 1] if "add" in name else [], queue=template_queue,
                  ignore_result=ignore_result)  # fmt: skip
    raw = client.rpop(template_queue)
    if not isinstance(raw, bytes):
        raise RuntimeError("the template message was not sent")
    envelope = json.loads(raw)
    envelope["properties"]["delivery_info"]["routing_key"] = queue
    ids, messages = [], []
    for _ in range(count):
        task_id = str(uuid.uuid4())
        envelope["headers"]["id"] = envelope["headers"]["root_id"] = task_id
        envelope["properties"]["correlation_id"] = task_id
        envelope["properties"]["delivery_tag"] = str(uuid.uuid4())
        ids.append(task_id)
        messages.append(json.dumps(envelope))
    return ids, messages


def push(client: redis.Redis, queue: str, messages: list[str]) -> None:
    for i in range(0, len(messages), CHUNK):
        client.lpush(queue, *messages[i : i + CHUNK])


def celery_harder_system(
    stack: StackEnv,
    server: RedisServer,
    pid: int,
    ignore_result: bool,
    alive: Callable[[], None],
    db: int = CH_DB,
    label: str | None = None,
) -> System:
    settings = Settings(broker_url=stack.broker_url)
    client = create_task_client(settings)
    rc = server.client(db)

    def load(count: int) -> Callable[[], bool]:
        ids, messages = celery_messages(client.app, "add", "celery", count, ignore_result, rc)
        if ignore_result:  # such a task leaves nothing in Redis: a stored sentinel, sent last
            ids, last = celery_messages(client.app, "add", "celery", 1, False, rc)
            messages += last
        push(rc, "celery", messages)
        # With results: every start mark; without: the sentinel's stored result.
        marks = [keys.STARTED + t for t in ids] if not ignore_result else []
        sentinel = client.meta_key(ids[0]) if ignore_result else None

        def done() -> bool:
            if rc.llen("celery") or rc.hlen(settings.unacked_key):
                return False
            if sentinel is not None:
                return b'"SUCCESS"' in (rc.get(sentinel) or b"")
            return all(
                rc.exists(*marks[i : i + CHUNK]) == len(marks[i : i + CHUNK])
                for i in range(0, len(marks), CHUNK)
            )

        return done

    label = label or "celery-harder, results " + (
        "not stored (ignore_result)" if ignore_result else "stored"
    )
    return System(label, pid, load, alive)


def raw_celery_system(server: RedisServer, pid: int, results: bool,
                      alive: Callable[[], None]) -> System:  # fmt: skip
    url = server.url(RAW_DB)
    app = Celery("raw_client", broker=url, backend=url)
    rc = server.client(RAW_DB)

    def load(count: int) -> Callable[[], bool]:
        name = "raw.noop" if results else "raw.noop_no_result"
        ids, messages = celery_messages(app, name, "celery", count, not results, rc)
        if not results:  # the sentinel: one stored result, sent last
            sentinel, last = celery_messages(app, "raw.noop", "celery", 1, False, rc)
            ids, messages = sentinel, messages + last
        push(rc, "celery", messages)
        metas = [f"celery-task-meta-{t}" for t in ids]

        def done() -> bool:
            if rc.llen("celery"):
                return False
            return all(
                v is not None and b'"SUCCESS"' in v
                for i in range(0, len(metas), CHUNK)
                for v in rc.mget(metas[i : i + CHUNK])
            )

        return done

    label = "raw Celery defaults, results " + ("stored" if results else "not stored")
    return System(label, pid, load, alive)


def peer_system(name: str, server: RedisServer, db: int, python: str, module: str,
                queue_key: str, pid: int, alive: Callable[[], None]) -> System:  # fmt: skip
    rc = server.client(db)
    env = bench_env({"BENCH_REDIS_URL": server.url(db)})

    def load(count: int) -> Callable[[], bool]:
        rc.delete(SENTINEL)
        subprocess.run([python, "-m", module, str(count)], env={**os.environ, **env}, cwd=ROOT,
                       check=True, timeout=DRAIN_TIMEOUT)  # fmt: skip

        def done() -> bool:
            return bool(rc.exists(SENTINEL)) and not rc.llen(queue_key)

        return done

    return System(name, pid, load, alive)


@contextmanager
def systems(server: RedisServer, workdir: Path, size: Size, python: str) -> Iterator[
    tuple[list[System], dict[str, int]]
]:  # fmt: skip
    """Every worker started, warmed up and idle; their pids for B7."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack = StackEnv(broker_url=server.url(CH_DB), workdir=workdir)
    c = size.concurrency
    with ExitStack() as stack_:
        worker = stack_.enter_context(running_worker(stack, "b2", concurrency=c))
        fast_stack = StackEnv(broker_url=server.url(CH_FAST_DB), workdir=workdir, extra=FAST_ENV)
        fast = stack_.enter_context(running_worker(fast_stack, "b2-fast", concurrency=c))

        def worker_alive() -> None:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited: {worker.log.read_text()[-2000:]}")

        def fast_alive() -> None:
            if fast.process.poll() is not None:
                raise RuntimeError(f"fast worker exited: {fast.log.read_text()[-2000:]}")

        raw = stack_.enter_context(running_program(
            raw_celery_worker(server.url(RAW_DB), c), "raw-celery-b2", workdir,
            {"BENCH_REDIS_URL": server.url(RAW_DB)},
        ))  # fmt: skip
        dram = stack_.enter_context(running_program(
            [str(Path(python).parent / "dramatiq"), "bench.peers.dramatiq_app",
             "--processes", str(c), "--threads", "1"], "dramatiq", workdir,
            {"BENCH_REDIS_URL": server.url(DRAMATIQ_DB)},
        ))  # fmt: skip
        tq = stack_.enter_context(running_program(
            [str(Path(python).parent / "taskiq"), "worker", "bench.peers.taskiq_app:broker",
             "--workers", str(c), "--max-async-tasks", "1"], "taskiq", workdir,
            {"BENCH_REDIS_URL": server.url(TASKIQ_DB)},
        ))  # fmt: skip
        found = [
            celery_harder_system(stack, server, worker.process.pid, False, worker_alive),
            celery_harder_system(stack, server, worker.process.pid, True, worker_alive),
            raw_celery_system(server, raw.process.pid, True, raw.check),
            raw_celery_system(server, raw.process.pid, False, raw.check),
            peer_system("Dramatiq defaults (processes × 1 thread)", server, DRAMATIQ_DB, python,
                        "bench.peers.dramatiq_app", DRAMATIQ_QUEUE, dram.process.pid,
                        dram.check),
            peer_system("taskiq ListQueueBroker (workers × 1 async task)", server, TASKIQ_DB,
                        python, "bench.peers.taskiq_app", TASKIQ_QUEUE, tq.process.pid,
                        tq.check),
            celery_harder_system(fast_stack, server, fast.process.pid, False, fast_alive,
                                 CH_FAST_DB, FAST_LABEL),
        ]  # fmt: skip
        for system in found:  # a warm-up drain: each is consuming before the clock runs
            system.drain(WARMUP)
        yield found, {"celery-harder": worker.process.pid, "raw Celery": raw.process.pid}


def run(server: RedisServer, workdir: Path, size: Size) -> Results:
    python = install_tools()
    n = size.drain_tasks
    results = Results()
    with systems(server, workdir / "b2", size, python) as (found, pids):
        rss_idle = {k: [tree_rss_mib(p) for _ in range(size.reps)] for k, p in pids.items()}
        times: dict[str, list[float]] = {s.name: [] for s in found}
        for _ in range(size.reps):
            for system in found:
                times[system.name].append(system.drain(n))
        rss_after = {k: [tree_rss_mib(p) for _ in range(size.reps)] for k, p in pids.items()}
    rate = {name: [n / t for t in samples] for name, samples in times.items()}
    ch_stored, ch_none, raw_stored, raw_none, dram, tq, ch_fast = (s.name for s in found)
    pairs = [
        (ch_stored, raw_stored), (ch_none, raw_none), (raw_stored, dram), (raw_none, dram),
        (dram, None), (tq, dram), (ch_fast, raw_stored), (ch_fast, dram),
    ]  # fmt: skip
    for name, base in pairs:
        results.rows.append(
            Row(
                "B2",
                f"drain of {n:,} pre-loaded no-op tasks: {name}",
                "tasks/s",
                Figure.of(rate[name]),
                base or "— (the moonshot)",
                ratios(rate[name], rate[base]) if base else None,
                Figure.of(rate[base]) if base else None,
            )
        )
    for name, base in ((ch_stored, raw_stored), (ch_none, raw_none)):
        results.targets.append(
            check(
                "B2",
                f"{name} ≥ 1.0× {base}",
                ratios(rate[name], rate[base]),
                "×",
                lambda x: x >= 1.0,
                note=ACK_BATCH_NOTE,
            )
        )
    add_rss_rows(
        results,
        (f"worker RSS (main + {size.concurrency} pool processes)", "worker RSS"),
        ("plain Celery worker", "plain Celery worker"),
        [
            (when, rss["celery-harder"], rss["raw Celery"])
            for when, rss in (("idle", rss_idle), ("after B2", rss_after))
        ],
    )
    results.notes.append(
        f"B2: total concurrency {size.concurrency} everywhere; {WARMUP} tasks of warm-up per "
        f"system; peers {peer_versions(python)} from their own venv. celery-harder's task is "
        "`add(1, 1)` (its worker runs catalog tasks only, and acknowledges late); the others "
        "run empty functions. Per task, celery-harder's pool process makes two Redis round "
        "trips with results (the start's Lua script: cancel check, start count and mark, "
        "STARTED; the result's: Celery's SUCCESS guard and SET+PUBLISH), as many as raw "
        "Celery's GET then SET+PUBLISH, and none without (a task that stores no result and is"
        " no workflow's leaf skips the start script on its first delivery); its main process "
        "also publishes Flower's task events. Raw Celery runs from the same venv, so both "
        "parse Redis replies with hiredis (a dependency of celery-harder's core; `pip install "
        "celery[redis]` alone has none): the baseline has that speed-up too. The FAST PROFILE "
        "rows are a worker started with CELERY_HARDER_WORKER_PROFILE=fast (acks early, "
        "prefetch multiplier 16, no STARTED "
        "state: it can lose a task whose worker dies, see docs/reliability.md); they are not "
        "the default and no target is checked on them. B7 RSS: /proc VmRSS of the worker's "
        "main process and its pool children, sampled from the running processes."
    )
    return results
