"""T1: work survives a killed pool process and a worker shutdown (nothing lost).

Each test runs its own redis-server and workers, because it kills them.
"""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_harder.keys import DELIVERIES, STARTED
from celery_harder.results import TaskStatus
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from celery_harder_dev.chaos.ledger import wait_status
from celery_harder_dev.local_processes import stop_process
from celery_harder_dev.polling import wait_until
from tests.support.stack import RedisServer, StackEnv, running_redis, running_worker, start_worker


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[tuple[RedisServer, StackEnv, TaskClient]]:
    with running_redis(tmp_path / "redis") as server:
        stack = StackEnv(broker_url=server.url(), workdir=tmp_path)
        client = create_task_client(Settings(broker_url=server.url()))
        yield server, stack, client
        client.app.close()


def wait_state(
    client: TaskClient, task_id: str, states: set[str], timeout: float = 60
) -> TaskStatus:
    return wait_status(
        client, task_id, lambda s: s.state in states, f"{task_id} in {states}", timeout
    )


def test_killed_pool_process_task_is_redelivered_and_completes(private_stack) -> None:
    server, stack, client = private_stack
    with running_worker(stack, "w1", concurrency=2) as worker:
        task_id = client.submit("sleep", [3])
        progress = wait_state(client, task_id, {"PROGRESS"}).progress
        assert progress is not None
        victim = int(progress["pid"])
        assert victim in worker.children()
        os.kill(victim, signal.SIGKILL)
        done = wait_state(client, task_id, {"SUCCESS", "FAILURE"})
    assert done.state == "SUCCESS", done
    assert done.result == {"slept": 3}
    # It ran twice: the killed delivery and the redelivery.
    assert int(server.client().get(DELIVERIES + task_id)) == 2


def test_sigterm_finishes_running_work_and_leaves_queued_work_for_the_next_worker(
    private_stack,
) -> None:
    _, stack, client = private_stack
    worker = start_worker(stack, "w1", concurrency=1)
    try:
        running = client.submit("sleep", [2])
        wait_state(client, running, {"PROGRESS"})
        queued = [client.submit("add", [i, i]) for i in range(5)]
        worker.signal(signal.SIGTERM)  # to the main process alone, as Kubernetes does
        worker.process.wait(timeout=60)
    finally:
        stop_process(worker.process)
    assert client.status(running).state == "SUCCESS"  # warm shutdown let it finish
    assert all(client.status(t).state == "PENDING" for t in queued)
    with running_worker(stack, "w2", concurrency=1):
        results = [wait_state(client, t, {"SUCCESS"}).result for t in queued]
    assert results == [0, 2, 4, 6, 8]


def test_cold_shutdown_after_soft_timeout_restores_the_running_task(private_stack) -> None:
    _, stack, client = private_stack
    stack.extra["CELERY_HARDER_SOFT_SHUTDOWN_TIMEOUT"] = "1"
    worker = start_worker(stack, "w1", concurrency=1)
    try:
        task_id = client.submit("sleep", [8])
        wait_state(client, task_id, {"PROGRESS"})
        worker.signal(signal.SIGQUIT)  # cold shutdown, preceded by a 1 s soft shutdown
        worker.process.wait(timeout=60)
    finally:
        stop_process(worker.process)
    assert client.status(task_id).state != "SUCCESS"
    with running_worker(stack, "w2", concurrency=1):
        done = wait_state(client, task_id, {"SUCCESS", "FAILURE"}, timeout=60)
    assert done.state == "SUCCESS", done


def test_a_task_that_always_kills_its_process_is_bounded(private_stack) -> None:
    _, stack, client = private_stack
    stack.extra["CELERY_HARDER_MAX_DELIVERIES"] = "2"
    with running_worker(stack, "w1", concurrency=1) as worker:
        task_id = client.submit("sleep", [30])
        for _ in range(2):
            victim = int(wait_state(client, task_id, {"PROGRESS"}).progress["pid"])
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda v=victim: v not in worker.children(), 30, "pool replaced")
            wait_until(
                lambda v=victim: (
                    (s := client.status(task_id)) is not None
                    and not (s.state == "PROGRESS" and s.progress and s.progress["pid"] == v)
                ),
                30,
                "task left the killed process",
            )
        done = wait_state(client, task_id, {"FAILURE"})
    assert done.error is not None and done.error.type == "TooManyDeliveries"


def test_a_task_without_result_starts_untracked_and_its_redeliveries_are_counted(
    private_stack,
) -> None:
    """Its first delivery writes nothing before its body; each copy after a kill counts
    that first one too, so the bound holds: the third start (limit 2) never runs."""
    server, stack, client = private_stack
    stack.extra["CELERY_HARDER_MAX_DELIVERIES"] = "2"
    r = server.client()
    settings = Settings(broker_url=server.url())
    with running_worker(stack, "w1", concurrency=1) as worker:
        task_id = client.app.send_task("sleep", [30], ignore_result=True).id
        victims = []
        for count in (None, b"2"):
            progress = wait_status(
                client, task_id,
                lambda s: s.state == "PROGRESS" and s.progress["pid"] not in victims,
                "a new run of the task", 60,
            ).progress  # fmt: skip
            assert r.get(DELIVERIES + task_id) == count
            assert (r.exists(STARTED + task_id) == 1) == (count is not None)
            victims.append(int(progress["pid"]))
            os.kill(victims[-1], signal.SIGKILL)
        wait_until(
            lambda: (
                r.get(DELIVERIES + task_id) == b"3"
                and not r.llen(settings.queue)
                and not r.hlen(settings.unacked_key)
            ),
            60,
            "the third delivery counted and acknowledged",
        )
        assert worker.process.poll() is None
    status = client.status(task_id)
    assert status is not None and status.progress["pid"] == victims[-1]  # it never ran again
