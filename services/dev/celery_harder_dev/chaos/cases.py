"""The disruptions of `make chaos`: each runs real processes and returns its counted row.

Every case has its own AOF redis-server, prefork workers with two processes and a
stream of `sleep` tasks: the first two long enough to be running at the disruption,
the rest queued behind them. What became of each task is read from Redis afterwards
(`ledger`) and counted (`counting`).
"""

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder_dev.chaos.consistency import Sample, status_violations
from celery_harder_dev.chaos.counting import CaseResult, tally
from celery_harder_dev.chaos.ledger import Ledger
from celery_harder_dev.local_processes import stop_process
from celery_harder_dev.polling import wait_until
from celery_harder_dev.stack import (
    AofRedis,
    ApiServer,
    StackEnv,
    Worker,
    aof_redis,
    running_api,
    running_worker,
    start_worker,
)

CONCURRENCY = 2  # pool processes per worker: the two long tasks occupy both
# The main-process kill case shortens the visibility timeout so that the dead worker's
# messages come back within the run; its long tasks stay well under it, or a healthy
# worker's own running tasks would be restored too (kombu#337).
SHORT_VISIBILITY = 5
KILLED_LONG = 2.0


@dataclass(frozen=True)
class Size:
    """How big a run is: tasks per case, how long they sleep, how long Redis stays down."""

    tasks: int
    short: float  # seconds each queued task sleeps
    long: float  # seconds the two tasks running at the disruption sleep (> 1 s soft shutdown)
    outage: float  # seconds Redis stays down
    pool_kills: int  # pool processes killed in the stream case
    stream: float  # seconds each task of that stream sleeps: long enough to be caught running

    def bound(self, extra: float = 0.0) -> float:
        """Seconds to wait for every task to be final: the work on two processes, plus margin."""
        return 60.0 + extra + self.long + self.tasks * self.short / CONCURRENCY * 2


FULL = Size(tasks=100, short=0.5, long=4.0, outage=30.0, pool_kills=10, stream=0.5)
SHORT = Size(tasks=8, short=0.2, long=3.0, outage=3.0, pool_kills=2, stream=1.0)


@dataclass
class CaseRun:
    """What a case works with: its size, directory, environment, ledger and Redis."""

    size: Size
    stack: StackEnv
    ledger: Ledger
    redis: AofRedis
    # What a case found wrong beyond lost tasks (an inconsistent status): fails the row.
    violations: list[str] = field(default_factory=list)

    def workload(self, long: float | None = None) -> list[str]:
        """Send two long tasks then the queued short ones; the long tasks' ids."""
        running = self.ledger.submit(self.size.long if long is None else long, CONCURRENCY)
        self.ledger.submit(self.size.short, self.size.tasks - CONCURRENCY)
        return running


@dataclass(frozen=True)
class Case:
    """One row of the table: a label and the disruption that produces its counts."""

    name: str  # short id, for test ids and --case
    label: str
    run: Callable[[CaseRun], str]  # returns the row's note
    in_short_run: bool = True  # part of the short run inside `make test`


def replaced(worker: Worker, pid: int) -> bool:
    """Whether the pool process `pid` is gone from the worker's children."""
    return pid not in worker.children()


def kill_running(
    run: CaseRun, worker: Worker, limit: int, observe: Callable[[], object] = lambda: None
) -> int:
    """kill -9 the pool process of one running task after another, each task at most once.

    `observe` is called on every poll (the workflow case reads its status there). Stops
    after `limit` kills, or when every task is final first; returns the number killed.
    """
    killed: set[str] = set()
    found: list[tuple[str, int]] = []

    def victim_found() -> bool:
        observe()
        # Each task is killed at most once, so none reaches the redelivery bound.
        pids = worker.children()
        running = run.ledger.running().items()
        found[:] = [(t, p) for t, p in running if t not in killed and p in pids][:1]
        return bool(found) or run.ledger.all_final()

    while len(killed) < limit:
        wait_until(victim_found, 60, "a running task to kill")
        if not found:
            break  # the stream ended first; the note says how many were killed
        task_id, pid = found[0]
        os.kill(pid, signal.SIGKILL)
        killed.add(task_id)
        wait_until(partial(replaced, worker, pid), 30, "pool process replaced")
    return len(killed)


def pool_kill(run: CaseRun) -> str:
    """kill -9 of the pool process running a task, again and again over a stream."""
    with running_worker(run.stack, "w1", CONCURRENCY) as worker:
        run.ledger.submit(run.size.stream, run.size.tasks)
        killed = kill_running(run, worker, run.size.pool_kills)
        _, seconds = run.ledger.wait_final(run.size.bound())
    return f"{killed} pool processes killed mid-task; all final {seconds:.1f} s after"


def workflow_redelivery(run: CaseRun) -> str:
    """A group workflow whose running leaves are killed and redelivered; its status is read
    throughout and must stay consistent (status_violations)."""
    engine = WorkflowEngine(run.ledger.client)
    leaf = {"task": "sleep", "args": [run.size.stream]}
    submitted = engine.submit({"group": [leaf] * run.size.tasks})
    run.ledger.ids.extend(leaf.task_id for leaf in submitted.leaves)
    samples: list[Sample] = []

    def observe() -> bool:
        status = engine.status(submitted.id)
        if status is not None:
            samples.append(Sample(status.phase, dict(status.counts)))
        return status is not None and status.finished

    with running_worker(run.stack, "w1", CONCURRENCY) as worker:
        killed = kill_running(run, worker, run.size.pool_kills, observe)
        wait_until(observe, run.size.bound(), "the workflow final", interval=0.1)
    run.violations.extend(status_violations(samples, run.size.tasks, "Succeeded"))
    return f"{killed} leaves killed mid-run; {len(samples)} status reads, last {samples[-1].phase}"


def chord_redelivery(run: CaseRun) -> str:
    """A chord whose header tasks are killed mid-run and redelivered: its body runs once."""
    engine = WorkflowEngine(run.ledger.client)
    header = [{"task": "sleep", "args": [run.size.stream]}] * (run.size.tasks - 1)
    # An immutable body (Celery's .si()) ignores the header's results: what is counted
    # is whether the chord's counter fired it once, not what it computed from them.
    body = {"task": "add", "args": [1, 2], "immutable": True}
    submitted = engine.submit({"chord": {"header": header, "body": body}})
    run.ledger.ids.extend(leaf.task_id for leaf in submitted.leaves)
    body_id = submitted.leaves[-1].task_id
    with running_worker(run.stack, "w1", CONCURRENCY) as worker:
        killed = kill_running(run, worker, run.size.pool_kills)
        run.ledger.wait_final(run.size.bound())
    body_runs = run.ledger.starts()[body_id]
    status = engine.status(submitted.id)
    result = status.result if status is not None else None
    if body_runs != 1:
        run.violations.append(f"the chord body ran {body_runs} times")
    if status is None or status.phase != "Succeeded" or result != 3:
        run.violations.append(f"the chord ended {status and status.phase} with {result!r}")
    return f"{killed} header tasks killed mid-run; the body ran {body_runs} time(s)"


def main_kill(run: CaseRun) -> str:
    """kill -9 of the whole worker (main process and pool, as when its pod dies)."""
    run.stack.extra["CELERY_HARDER_VISIBILITY_TIMEOUT"] = str(SHORT_VISIBILITY)
    worker = start_worker(run.stack, "w1", CONCURRENCY)
    try:
        run.ledger.wait_running(run.workload(long=KILLED_LONG))
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        killed = time.monotonic()
    finally:
        stop_process(worker.process)
    with running_worker(run.stack, "w2", CONCURRENCY):
        # kombu's first unacked sweep comes about 10 s after a worker starts, then every
        # ~100 s: that, not only the visibility timeout, bounds the redelivery.
        run.ledger.wait_final(run.size.bound(extra=120))
        seconds = time.monotonic() - killed
    return (
        f"visibility timeout {SHORT_VISIBILITY} s; a new worker finished everything "
        f"{seconds:.1f} s after the kill"
    )


def shutdown(sig: signal.Signals, soft_timeout: float | None) -> Callable[[CaseRun], str]:
    """A worker sent `sig` (main process alone, as Kubernetes does) with two tasks running."""

    def case(run: CaseRun) -> str:
        if soft_timeout is not None:
            run.stack.extra["CELERY_HARDER_SOFT_SHUTDOWN_TIMEOUT"] = str(soft_timeout)
        worker = start_worker(run.stack, "w1", CONCURRENCY)
        try:
            run.ledger.wait_running(run.workload())
            worker.signal(sig)
            worker.process.wait(timeout=120)
        finally:
            stop_process(worker.process)
        with running_worker(run.stack, "w2", CONCURRENCY):
            _, seconds = run.ledger.wait_final(run.size.bound())
        return f"the rest ran on a second worker, all final {seconds:.1f} s after it started"

    return case


# "Quickly": a submit during an outage must be refused within this many seconds
# (redis_timeout is 2 s; the publish retry policy adds under a second).
REFUSE_WITHIN = 5.0


def probe_outage(api: ApiServer, until: float) -> tuple[list[int], float]:
    """POST /add until `until` (monotonic) while Redis is down: the codes, the slowest answer."""
    codes: list[int] = []
    slowest = 0.0
    with api.client(timeout=30) as http:
        while time.monotonic() < until:
            started = time.monotonic()
            codes.append(http.post("/add", json={"x": 1, "y": 1}).status_code)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.5)  # pacing the probes, not waiting for a state
    return codes, slowest


def api_accepts(api: ApiServer) -> bool:
    """Whether the API takes a submit again (the task is not counted: no result awaited)."""
    with api.client(timeout=10) as http:
        return http.post("/add", json={"x": 1, "y": 1}).status_code == 202


def redis_kill(run: CaseRun) -> str:
    """kill -9 of Redis with tasks queued and running, restarted from its AOF later; the
    API is probed throughout: 503 quickly while Redis is down, 202 again by itself."""
    with running_worker(run.stack, "w1", CONCURRENCY) as worker, running_api(run.stack) as api:
        run.ledger.wait_running(run.workload())
        run.redis.kill()
        codes, slowest = probe_outage(api, time.monotonic() + run.size.outage)
        run.redis.start()
        restarted = time.monotonic()
        wait_until(partial(api_accepts, api), 30, "the API accepting work again")
        api_back = time.monotonic() - restarted
        _, seconds = run.ledger.wait_final(run.size.bound())
        same = worker.process.poll() is None
    if set(codes) != {503} or slowest > REFUSE_WITHIN:
        run.violations.append(
            f"API during the outage: codes {sorted(set(codes))}, slowest {slowest:.1f} s"
        )
    kept = "the same worker consumed again" if same else "the worker had exited"
    return (
        f"down {run.size.outage:.0f} s; API: {len(codes)} submits refused with 503 in at most "
        f"{slowest:.1f} s, 202 again {api_back:.1f} s after the restart; all final "
        f"{seconds:.1f} s after the restart; {kept}"
    )


def connection_drop(run: CaseRun) -> str:
    """Every Redis client connection killed while Redis stays up."""
    with running_worker(run.stack, "w1", CONCURRENCY):
        run.ledger.wait_running(run.workload())
        client = run.redis.client()
        # The consumer's subscription first, then every other connection but this one.
        client.client_kill_filter(_type="pubsub")
        client.client_kill_filter(_type="normal")
        _, seconds = run.ledger.wait_final(run.size.bound())
    return f"all final {seconds:.1f} s after the drop"


CASES = (
    Case("pool-kill", "worker: kill -9 of pool processes over a stream of tasks", pool_kill),
    # Up to ~100 s of waiting for kombu's sweep: `make chaos` only.
    Case(
        "main-kill",
        "worker: kill -9 of main process and pool mid-task",
        main_kill,
        in_short_run=False,
    ),
    Case("sigterm", "worker: SIGTERM with tasks running", shutdown(signal.SIGTERM, None)),
    Case("sigquit", "worker: SIGQUIT after a 1 s soft shutdown", shutdown(signal.SIGQUIT, 1.0)),
    Case("redis-kill", "Redis: kill -9 and restart (AOF, appendfsync always)", redis_kill),
    Case("connection-drop", "Redis: every client connection dropped, Redis up", connection_drop),
    Case(
        "chord-redelivery",
        "chord: header tasks killed mid-run and redelivered, the body counted",
        chord_redelivery,
    ),
    Case(
        "workflow-redelivery",
        "workflow: group leaves killed mid-run and redelivered, status read throughout",
        workflow_redelivery,
    ),
)


def run_case(case: Case, size: Size, workdir: Path) -> CaseResult:
    """Run one case on its own Redis in `workdir`; its counted row."""
    workdir.mkdir(parents=True, exist_ok=True)
    with aof_redis(workdir / "redis") as server:
        stack = StackEnv(broker_url=server.url(), workdir=workdir)
        client = create_task_client(Settings(broker_url=server.url()))
        try:
            run = CaseRun(size, stack, Ledger(client), server)
            note = case.run(run)
            states, starts = run.ledger.states(), run.ledger.starts()
            return tally(case.label, states, starts, note, violations=run.violations)
        finally:
            client.app.close()
