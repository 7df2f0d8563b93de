"""T1: a worker with the `fast` profile (CELERY_HARDER_WORKER_PROFILE=fast) runs tasks.

The profile (docs/reliability.md, "The fast profile") acknowledges early, prefetches
and stores no STARTED state: its tasks still run once each and store their results,
the catalog and the redelivery checks still apply, and nothing reads STARTED.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_harder import keys
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from tests.support.polling import wait_until
from tests.support.stack import RedisServer, StackEnv, Worker, running_worker

FAST_DB = 12  # a worker of this module's own consumes it


@pytest.fixture(scope="module")
def fast(redis_server: RedisServer, stack_dir: Path) -> Iterator[tuple[Worker, TaskClient]]:
    url = redis_server.url(FAST_DB)
    stack = StackEnv(
        broker_url=url,
        workdir=stack_dir / "fast",
        extra={
            "CELERY_HARDER_WORKER_PROFILE": "fast",
            "CELERY_HARDER_FAST_PREFETCH_MULTIPLIER": "8",
        },
    )
    stack.workdir.mkdir(exist_ok=True)
    with running_worker(stack, "fast", concurrency=2) as worker:
        yield worker, create_task_client(Settings(broker_url=url, result_backend=url))


def final(client: TaskClient, task_id: str, timeout: float = 60.0):
    return wait_until(
        lambda: (s := client.status(task_id)) and s.state in {"SUCCESS", "FAILURE"} and s,
        timeout,
        what=f"task {task_id}",
    )


def test_a_fast_worker_runs_every_task_once(fast: tuple[Worker, TaskClient]) -> None:
    _, client = fast
    ids = [client.submit("add", [i, 1]) for i in range(300)]
    for i, task_id in enumerate(ids):
        status = final(client, task_id)
        assert (status.state, status.result) == ("SUCCESS", i + 1), status
    runs = client.results.mget([keys.DELIVERIES + t for t in ids])
    assert runs == [b"1"] * len(ids)  # the start count (CatalogTask) still runs, once each
    # every message acknowledged (an ack's record goes with the next batch, within 20 ms)
    wait_until(lambda: client.results.hlen("unacked") == 0, 10, what="acks written")


def test_a_fast_worker_stores_no_started_state(fast: tuple[Worker, TaskClient]) -> None:
    _, client = fast
    task_id = client.submit("sleep", [1.5])
    # It runs (its PROGRESS is stored) without ever showing STARTED.
    seen = set()

    def done() -> bool:
        status = client.status(task_id)
        if status is not None:
            seen.add(status.state)
        return status is not None and status.state == "SUCCESS"

    wait_until(done, 30, interval=0.05, what="sleep task")
    assert "STARTED" not in seen, seen
    assert "PROGRESS" in seen, seen
    assert client.results.exists(keys.STARTED + task_id)  # its start time is still recorded


def test_a_fast_worker_still_fails_a_failing_task(fast: tuple[Worker, TaskClient]) -> None:
    _, client = fast
    status = final(client, client.submit("fail", ["on purpose"]))
    assert status.state == "FAILURE", status


def test_the_default_worker_still_shows_started_as_celery_stores_it(
    worker: Worker, stack: StackEnv
) -> None:
    """The contrast: a default worker stores STARTED (now from CatalogTask's start script,
    in Celery's meta format, published on the result key as Celery's backend does)."""
    client = create_task_client(Settings(broker_url=stack.broker_url))
    outgoing = client.prepare("sleep", [0.5], None)
    assert outgoing is not None
    pubsub = client.results.pubsub()
    pubsub.subscribe(client.meta_key(outgoing.task_id))
    client.send(outgoing)
    states: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (states and states[-1]["status"] == "SUCCESS"):
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "message":
            states.append(json.loads(message["data"]))
    pubsub.close()
    assert [m["status"] for m in states][:1] == ["STARTED"], states
    started = states[0]
    assert started["task_id"] == outgoing.task_id
    assert set(started["result"]) == {"pid", "hostname"}, started
    assert started["result"]["hostname"].startswith(f"{worker.name}@"), started
    assert states[-1]["status"] == "SUCCESS", states
