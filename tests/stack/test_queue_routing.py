"""T1: queues and pools on real prefork workers: routing, isolation of backlogs, workflow nodes.

Two workers share one Redis database, as two chart pools do: `default` consumes
`celery`, `cpu` consumes `cpu` with one process. Every process is told the queue list
(`CELERY_HARDER_QUEUES=celery,cpu`), as the chart's ConfigMap tells the API and the operator.
"""

import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from celery_harder import keys
from celery_harder.routing import UnknownQueueError
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from tests.support.polling import poll_json, wait_until
from tests.support.stack import (
    ApiServer,
    RedisServer,
    StackEnv,
    Worker,
    running_api,
    running_worker,
)

POOLS_DB = 6  # a database of its own: the session's worker (queue `celery`, db 0) never sees it
QUEUES = "celery,cpu"


@dataclass
class Pools:
    """The two pools' workers, a client that knows the queues, and an API in front."""

    default: Worker
    cpu: Worker
    client: TaskClient
    api: ApiServer


@pytest.fixture(scope="module")
def pools(redis_server: RedisServer, stack_dir: Path) -> Iterator[Pools]:
    stack = StackEnv(
        broker_url=redis_server.url(POOLS_DB),
        workdir=stack_dir / "pools",
        extra={"CELERY_HARDER_QUEUES": QUEUES},
    )
    stack.workdir.mkdir(exist_ok=True)
    url = redis_server.url(POOLS_DB)
    settings = Settings(broker_url=url, result_backend=url, queues=("celery", "cpu"))
    with (
        running_worker(stack, "default", concurrency=2, queues=["celery"]) as default,
        running_worker(stack, "cpu", concurrency=1, queues=["cpu"]) as cpu,
        running_api(stack) as api,
    ):
        yield Pools(default, cpu, create_task_client(settings), api)


def result_of(client: TaskClient, task_id: str, timeout: float = 60) -> Any:
    """The task's result once it succeeded (AssertionError on any other final state)."""
    status = wait_until(
        lambda: (s := client.status(task_id)) and s.state in {"SUCCESS", "FAILURE"} and s,
        timeout,
        what=f"task {task_id}",
    )
    assert status.state == "SUCCESS", status
    return status.result


def started_at(client: TaskClient, task_id: str) -> float:
    """When the worker started the task (its own record, seconds since the epoch)."""
    raw = client.results.get(keys.STARTED + task_id)
    assert raw is not None, task_id
    return datetime.fromisoformat(raw.decode()).timestamp()


def test_a_task_routed_to_cpu_runs_on_the_cpu_pool_only(pools: Pools) -> None:
    on_cpu = [
        pools.client.submit("request_info", kwargs={"data": i}, queue="cpu") for i in range(4)
    ]
    on_default = [pools.client.submit("request_info", kwargs={"data": i}) for i in range(4)]
    for task_id in on_cpu:
        info = result_of(pools.client, task_id)
        assert (info["hostname"].split("@")[0], info["queue"]) == ("cpu", "cpu"), info
    for task_id in on_default:
        info = result_of(pools.client, task_id)
        assert (info["hostname"].split("@")[0], info["queue"]) == ("default", "celery"), info
    # The default pool never even received them: its log names none of the cpu ids.
    default_log = pools.default.log.read_text()
    assert all(task_id not in default_log for task_id in on_cpu)
    assert all(task_id in default_log for task_id in on_default)
    with pytest.raises(UnknownQueueError, match="unknown queue 'gpu'"):
        pools.client.submit("add", [1, 2], queue="gpu")


def test_a_backlog_on_cpu_does_not_delay_default_tasks(pools: Pools) -> None:
    """Wait = enqueue to start, measured per task; compared as a ratio (the machine is noisy)."""
    backlog = 6  # sleep(1) each on one process: the last waits about 5 s
    enqueued: dict[str, float] = {}
    for _ in range(backlog):
        task_id = pools.client.submit("sleep", [1.0], queue="cpu")
        enqueued[task_id] = time.time()
    cpu_ids = list(enqueued)
    default_ids = []
    for i in range(6):
        task_id = pools.client.submit("add", [i, i])
        enqueued[task_id] = time.time()
        default_ids.append(task_id)
    for task_id in [*default_ids, *cpu_ids]:
        result_of(pools.client, task_id, timeout=120)
    waits = {t: started_at(pools.client, t) - enqueued[t] for t in enqueued}
    cpu_waits = [waits[t] for t in cpu_ids]
    default_waits = [waits[t] for t in default_ids]
    # The measurement is the point: `pytest -s` (or -rP) shows it.
    print("\nqueue    tasks  wait median  wait max (enqueue -> start, s)")
    for queue, w in (("cpu", cpu_waits), ("celery", default_waits)):
        print(f"{queue:8} {len(w):5}  {statistics.median(w):11.3f}  {max(w):8.3f}")
    # The cpu backlog really waited (one process, six one-second tasks) ...
    assert max(cpu_waits) > 3.0, cpu_waits
    # ... and the default tasks did not wait behind it: all started before the backlog
    # drained, and their median wait is a small fraction of the backlog's.
    last_cpu_start = max(started_at(pools.client, t) for t in cpu_ids)
    assert all(started_at(pools.client, t) < last_cpu_start for t in default_ids)
    assert statistics.median(default_waits) < 0.25 * statistics.median(cpu_waits), waits


def test_a_workflow_node_with_options_queue_runs_on_that_pool(pools: Pools) -> None:
    group = [
        {"task": "request_info", "kwargs": {"data": "here"}},
        {"task": "request_info", "kwargs": {"data": "there"}, "options": {"queue": "cpu"}},
    ]
    with pools.api.client() as http:
        response = http.post("/workflows", json={"workflow": {"group": group}})
        assert response.status_code == 202, response.text
        status = poll_json(
            http,
            f"/workflows/{response.json()['id']}",
            lambda b: b["phase"] in {"Succeeded", "Failed", "Cancelled"},
            60,
        )
    assert status["phase"] == "Succeeded", status
    hosts = [info["hostname"].split("@")[0] for info in status["result"]]
    assert hosts == ["default", "cpu"], status["result"]


def test_an_unknown_queue_is_a_422_naming_the_node(pools: Pools) -> None:
    chain = [
        {"task": "add", "args": [1, 1]},
        {"task": "add", "args": [1], "options": {"queue": "gpu"}},
    ]
    records = pools.client.results
    before = len(records.keys(keys.WORKFLOW + "*"))
    with pools.api.client() as http:
        response = http.post("/workflows", json={"workflow": {"chain": chain}})
    assert response.status_code == 422, response.text
    (issue,) = response.json()["detail"]
    assert issue["loc"] == ["body", "workflow.chain[1].options.queue"], issue
    assert "unknown queue 'gpu'; configured queues: celery, cpu" in issue["msg"]
    assert len(records.keys(keys.WORKFLOW + "*")) == before  # nothing recorded, nothing sent
