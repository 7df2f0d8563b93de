"""B4: canvas submit → result against as many independent tasks; B5: a status read's cost.

B4 submits each shape through WorkflowEngine.submit (what POST /workflows and the
operator call) and, as its baseline, the same number of `add` tasks one
TaskClient.submit at a time; both end when every leaf's result reads SUCCESS
(one MGET per poll, the same for both).

B5 reads the status of a finished N-leaf workflow on a private redis-server holding
a copy of its keys, so that the worker's traffic cannot blur Redis's command
statistics; the baseline is one GET of a task's result on that server.
"""

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench.procs import wait_for
from bench.sizes import Size
from bench.stats import Figure, Results, Row, check, ratios
from celery_harder import keys
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder.workflow.record import record_key
from celery_harder_dev.stack import RedisServer, StackEnv, running_redis, running_worker

RUN_TIMEOUT = 600.0
# A chord of 1,000 has 1,001 leaves; the default bound is 1,000.
MAX_LEAVES = 5000


def engine_for(url: str) -> WorkflowEngine:
    return WorkflowEngine(
        create_task_client(Settings(broker_url=url, workflow_max_leaves=MAX_LEAVES))
    )


def add(i: int) -> dict[str, Any]:
    return {"task": "add", "args": [i, i]}


def shapes(size: Size) -> dict[str, dict[str, Any]]:
    chain = [add(1)] + [{"task": "add", "args": [1]} for _ in range(size.chain - 1)]
    found: dict[str, dict[str, Any]] = {
        f"chain of {size.chain}": {"chain": chain},
        f"group of {size.group}": {"group": [add(i) for i in range(size.group)]},
    }
    for n in size.chords:
        found[f"chord of {n:,}"] = {
            "chord": {"header": [add(i) for i in range(n)], "body": {"task": "xsum"}}
        }
    return found


def wait_succeeded(client: TaskClient, task_ids: Sequence[str]) -> None:
    names = [client.meta_key(t) for t in task_ids]

    def done() -> bool:
        return all(v is not None and b'"SUCCESS"' in v for v in client.results.mget(names))

    wait_for(done, f"{len(names)} results", RUN_TIMEOUT)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def canvas(engine: WorkflowEngine, size: Size) -> Results:
    client = engine.client
    subject: dict[str, list[float]] = {}
    baseline: dict[str, list[float]] = {}
    for _ in range(size.reps):
        for name, spec in shapes(size).items():
            leaves: list[str] = []

            def workflow(spec: dict[str, Any] = spec, leaves: list[str] = leaves) -> None:
                submitted = engine.submit(spec)
                leaves.extend(leaf.task_id for leaf in submitted.leaves)
                wait_succeeded(client, leaves)

            subject.setdefault(name, []).append(timed(workflow))

            def independent(count: int = len(leaves)) -> None:
                wait_succeeded(client, [client.submit("add", [i, i]) for i in range(count)])

            baseline.setdefault(name, []).append(timed(independent))
    results = Results()
    for name in shapes(size):
        s, b = subject[name], baseline[name]
        results.rows.append(
            Row(
                "B4",
                f"{name}: submit → every result",
                "s",
                Figure.of(s),
                "as many independent add tasks",
                ratios(s, b),
                Figure.of(b),
            )
        )
    largest = f"chord of {max(size.chords):,}"
    results.targets.append(
        check(
            "B4",
            f"{largest} ≤ 1.3× as many independent tasks",
            ratios(subject[largest], baseline[largest]),
            "×",
            lambda x: x <= 1.3,
        )
    )
    results.notes.append(
        "B4: each shape through WorkflowEngine.submit, the baseline through TaskClient.submit "
        "one task at a time; a chord's count includes its body (xsum), a chain passes each "
        f"result on. Bench clients raise workflow_max_leaves to {MAX_LEAVES} (a chord of 1,000 "
        "has 1,001 leaves; the default limit is 1,000)."
    )
    return results


def copy_workflow(source: RedisServer, target: RedisServer, workflow_id: str,
                  task_ids: Sequence[str]) -> None:  # fmt: skip
    names = [record_key(workflow_id).encode()] + [
        n for t in task_ids for n in (f"celery-task-meta-{t}".encode(), (keys.STARTED + t).encode())
    ]
    dump = source.client().pipeline(transaction=False)
    for name in names:
        dump.dump(name)
    restore = target.client().pipeline(transaction=False)
    for name, blob in zip(names, dump.execute(), strict=True):
        if blob is None:
            raise RuntimeError(f"{name!r} missing")
        restore.restore(name, 0, blob, replace=True)
    restore.execute()


def command_calls(server: RedisServer, fn: Callable[[], object]) -> int:
    """Redis commands `fn` sends (INFO commandstats, reset first; INFO and CONFIG not counted)."""
    stats = server.client()
    stats.config_resetstat()
    fn()
    return sum(
        int(v["calls"])
        for name, v in stats.info("commandstats").items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    )


def status_reads(server: RedisServer, workdir: Path, engine: WorkflowEngine, size: Size) -> Results:
    client = engine.client
    ids = {}
    for leaves in (10, size.leaves):
        submitted = engine.submit({"group": [add(i) for i in range(leaves)]})
        wait_succeeded(client, [leaf.task_id for leaf in submitted.leaves])
        ids[leaves] = (submitted.id, [leaf.task_id for leaf in submitted.leaves])
    commands: dict[int, list[float]] = {10: [], size.leaves: []}
    read_ms: list[float] = []
    get_ms: list[float] = []
    get_commands: list[float] = []
    with running_redis(workdir / "b5-copy") as copy:
        for wid, task_ids in ids.values():
            copy_workflow(server, copy, wid, task_ids)
        private = engine_for(copy.url())
        big_id, big_tasks = ids[size.leaves]
        one_key = private.client.meta_key(big_tasks[0])
        for wid, _ in ids.values():
            if private.status(wid) is None:  # connections made, scripts loaded
                raise RuntimeError(f"workflow {wid} not found in the copy")
        for _ in range(size.reps):
            for leaves, (wid, _) in ids.items():
                commands[leaves].append(command_calls(copy, partial(private.status, wid)))
            get_commands.append(command_calls(copy, lambda: private.redis.get(one_key)))
            reads = [timed(lambda: private.status(big_id)) for _ in range(size.status_reads)]
            gets = [timed(lambda: private.redis.get(one_key)) for _ in range(size.status_reads)]
            read_ms.append(1000 * sorted(reads)[len(reads) // 2])
            get_ms.append(1000 * sorted(gets)[len(gets) // 2])
        private.client.app.close()
    results = Results()
    for leaves in (10, size.leaves):
        results.rows.append(
            Row(
                "B5",
                f"status read of a {leaves:,}-leaf workflow: Redis commands",
                "commands",
                Figure.of(commands[leaves]),
                "one GET",
                ratios(commands[leaves], get_commands),
                Figure.of(get_commands),
            )
        )
    results.rows.append(
        Row(
            "B5",
            f"status read of a {size.leaves:,}-leaf workflow: time (median of "
            f"{size.status_reads} reads)",
            "ms",
            Figure.of(read_ms),
            "one GET",
            ratios(read_ms, get_ms),
            Figure.of(get_ms),
        )
    )
    constant = commands[10] == commands[size.leaves]
    results.targets.append(
        check(
            "B5",
            f"status read commands constant (10 and {size.leaves:,} leaves: the same)",
            Figure.of(commands[size.leaves]),
            " commands",
            lambda _: constant,
            note=f"10 leaves: {Figure.of(commands[10]).median:.0f} commands",
        )
    )
    results.notes.append(
        "B5: commands counted with INFO commandstats on a private redis-server holding a copy "
        "of the workflow's keys (record, results, start marks); one read per repetition."
    )
    return results


def run(server: RedisServer, workdir: Path, size: Size) -> Results:
    stack = StackEnv(broker_url=server.url(0), workdir=workdir / "b4")
    stack.workdir.mkdir(parents=True, exist_ok=True)
    with running_worker(stack, "b4", concurrency=size.concurrency):
        engine = engine_for(server.url(0))
        results = status_reads(server, workdir, engine, size)
        found = canvas(engine, size)
        engine.client.app.close()
    results.rows += found.rows
    results.targets += found.targets
    results.notes += found.notes
    return results
