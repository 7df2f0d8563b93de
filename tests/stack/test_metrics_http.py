"""T1: the API's /metrics against a real redis-server, a real prefork worker and uvicorn.

A known mix of tasks and workflows goes through an API of its own (database 7, with a
worker of its own, so no other test's traffic or reaper touches its counters); the
counters must show exactly that mix. A second API (database 8) has no worker at all:
messages sent there by Celery at several priorities stay in kombu's sub-lists, and the
queue gauges must equal LLEN of the keys that really exist in Redis.
"""

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from celery_harder import keys
from celery_harder import metric_names as mn
from celery_harder.celery_config import create_celery_app
from celery_harder.metrics_registry import WorkflowMetrics
from celery_harder.queues import PRIORITY_SEPARATOR, priority_keys
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder_dev.local_processes import free_port
from tests.support.polling import poll_json, wait_until
from tests.support.prom import Samples, by_label, scrape, value
from tests.support.stack import (
    ApiServer,
    RedisServer,
    StackEnv,
    running_api,
    running_worker,
)

MIX_DB = 7  # worker + API of this module only
PARKED_DB = 8  # an API and no worker: what is sent there stays
FINAL = ("Succeeded", "Failed", "Cancelled")


@pytest.fixture(scope="module")
def mix_api(redis_server: RedisServer, stack_dir: Path) -> Iterator[ApiServer]:
    stack = StackEnv(broker_url=redis_server.url(MIX_DB), workdir=stack_dir / "metrics-mix")
    stack.workdir.mkdir(exist_ok=True)
    with running_worker(stack, "metrics", concurrency=2), running_api(stack) as api:
        yield api


def metrics(api: ApiServer) -> Samples:
    return scrape(api.url + "/metrics")


def final_status(client: httpx.Client, wid: str, timeout: float = 60) -> dict[str, Any]:
    return poll_json(client, f"/workflows/{wid}", lambda b: b["phase"] in FINAL, timeout)


def test_the_counters_show_exactly_the_mix_that_was_sent(mix_api: ApiServer) -> None:
    with mix_api.client() as client:
        before = metrics(mix_api)
        # Nothing counted yet, and every outcome and kind is there from the start at 0.
        assert by_label(before, mn.WORKFLOWS_FINISHED.series, "outcome") == dict.fromkeys(
            mn.OUTCOMES, 0
        )
        assert by_label(before, mn.WORKFLOWS_SUBMITTED.series, "kind") == {
            "task": 0, "chain": 0, "group": 0, "chord": 0
        }  # fmt: skip
        assert value(before, mn.WORKFLOWS_STARTED.series) == 0
        tasks = [client.post("/add", json={"x": i, "y": 1}) for i in range(3)]
        tasks.append(
            client.post("/tasks", json={"task": "fail", "kwargs": {"message": "on purpose"}})
        )
        tasks.append(client.post("/test-request-info", json={"data": 1}))
        assert [r.status_code for r in tasks] == [202] * 5
        add = {"task": "add", "args": [1, 1]}
        chain = client.post("/chain", json={"steps": [add, {"task": "add", "args": [2]}]})
        chord = client.post("/chord", json={"header": [add, add], "body": {"task": "xsum"}})
        failing = client.post(
            "/workflows",
            json={"workflow": {"group": [add, {"task": "fail", "kwargs": {"message": "x"}}]}},
        )
        sleep = {"task": "sleep", "kwargs": {"seconds": 20}}
        cancelled = client.post("/workflows", json={"workflow": sleep})
        timed_out = client.post("/workflows", json={"workflow": sleep, "timeoutSeconds": 1})
        submitted = [chain, chord, failing, cancelled, timed_out]
        assert [r.status_code for r in submitted] == [202] * 5, [r.text for r in submitted]
        ids = [r.json()["id"] for r in submitted]
        gone = client.delete(f"/workflows/{ids[3]}", params={"terminate": "true"})
        assert gone.status_code == 202 and gone.json()["phase"] == "Cancelled", gone.text
        phases = [final_status(client, wid)["phase"] for wid in ids]
        assert phases == ["Succeeded", "Succeeded", "Failed", "Cancelled", "Failed"]
        assert final_status(client, ids[4])["reason"] == "Timeout"
        for r in tasks:
            poll_json(client, f"/result/{r.json()['task_id']}", lambda b: b["state"] in (
                "SUCCESS", "FAILURE"))  # fmt: skip
        # Read every status again: a second look at a finished workflow counts nothing.
        for wid in ids:
            final_status(client, wid)

    def settled() -> Samples | None:
        """The metrics once every ack is written (up to 20 ms after its task's result)."""
        samples = metrics(mix_api)
        in_flight = value(samples, mn.QUEUE_IN_FLIGHT.series, {"queue": "celery"})
        return samples if in_flight == 0 else None

    after = wait_until(settled, 10, 0.05, "nothing in flight")
    assert by_label(after, mn.TASKS_SUBMITTED.series, "task") == {
        "add": 3, "fail": 1, "request_info": 1
    }  # fmt: skip
    assert by_label(after, mn.WORKFLOWS_SUBMITTED.series, "kind") == {
        "task": 2, "chain": 1, "group": 1, "chord": 1
    }  # fmt: skip
    assert value(after, mn.WORKFLOWS_STARTED.series) == 5
    assert by_label(after, mn.WORKFLOWS_FINISHED.series, "outcome") == {
        "succeeded": 2, "failed": 1, "cancelled": 1, "timed_out": 1
    }  # fmt: skip
    durations = by_label(after, mn.WORKFLOW_DURATION.name + "_count", "outcome")
    assert durations == {"succeeded": 2, "failed": 1, "cancelled": 1, "timed_out": 1}
    timed_out_sum = value(after, mn.WORKFLOW_DURATION.name + "_sum", {"outcome": "timed_out"})
    assert timed_out_sum is not None and 1.0 <= timed_out_sum < 20
    # The instrumentator's HTTP metrics, by route template and status class.
    http = mn.HTTP_REQUESTS.series
    assert value(after, http, {"handler": "/add", "method": "POST", "status": "2xx"}) == 3
    assert value(after, http, {"handler": "/workflows", "method": "POST", "status": "2xx"}) == 3
    cancel = {"handler": "/workflows/{workflow_id}", "method": "DELETE", "status": "2xx"}
    assert value(after, http, cancel) == 1
    latency = {"handler": "/add", "method": "POST"}
    assert value(after, mn.HTTP_REQUEST_DURATION.name + "_count", latency) == 3
    # Everything ran: nothing waits, nothing is in flight, no deadline is overdue.
    assert value(after, mn.REDIS_UP.series) == 1
    assert value(after, mn.QUEUE_WAITING.series, {"queue": "celery"}) == 0
    assert value(after, mn.QUEUE_IN_FLIGHT.series, {"queue": "celery"}) == 0
    assert value(after, mn.WORKFLOWS_OVERDUE.series) == 0


def test_a_running_task_is_in_flight_in_its_queue(
    mix_api: ApiServer, redis_server: RedisServer
) -> None:
    broker = redis_server.client(MIX_DB)
    with mix_api.client() as client:
        response = client.post("/tasks", json={"task": "sleep", "kwargs": {"seconds": 3}})
        assert response.status_code == 202

        def one_in_flight() -> Samples | None:
            samples = metrics(mix_api)
            in_flight = value(samples, mn.QUEUE_IN_FLIGHT.series, {"queue": "celery"})
            return samples if in_flight == 1 else None

        wait_until(one_in_flight, 10, 0.05, "the sleep task in flight")
        assert broker.hlen("unacked") == 1  # what the gauge read: kombu's hash
        poll_json(
            client, f"/result/{response.json()['task_id']}", lambda b: b["state"] == "SUCCESS"
        )
    wait_until(
        lambda: value(metrics(mix_api), mn.QUEUE_IN_FLIGHT.series, {"queue": "celery"}) == 0,
        10, 0.05, "nothing in flight",
    )  # fmt: skip
    assert broker.hlen("unacked") == 0


def test_two_processes_reading_one_workflow_count_its_finish_once(
    mix_api: ApiServer, redis_server: RedisServer
) -> None:
    """Two engines (an API and an operator, say) race to read the same workflow's end."""
    url = redis_server.url(MIX_DB)
    settings = Settings(broker_url=url, result_backend=url)
    registries = [CollectorRegistry(), CollectorRegistry()]
    engines = [
        WorkflowEngine(create_task_client(settings), observer=WorkflowMetrics(reg))
        for reg in registries
    ]
    try:
        submitted = engines[0].submit({"chain": [{"task": "sleep", "kwargs": {"seconds": 1}}]})
        again = engines[1].submit(
            {"chain": [{"task": "sleep", "kwargs": {"seconds": 1}}]}, workflow_id=submitted.id
        )
        assert (submitted.dispatched_now, again.dispatched_now) == (True, False)

        def read_until_final(engine: WorkflowEngine) -> str:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = engine.status(submitted.id)
                assert status is not None
                if status.finished:
                    return status.phase
                time.sleep(0.02)  # the poll period
            raise AssertionError("the workflow never finished")

        with ThreadPoolExecutor(2) as pool:
            phases = list(pool.map(read_until_final, engines))
        assert phases == ["Succeeded", "Succeeded"]
        started = [reg.get_sample_value(mn.WORKFLOWS_STARTED.series) for reg in registries]
        finished = [
            reg.get_sample_value(mn.WORKFLOWS_FINISHED.series, {"outcome": "succeeded"})
            for reg in registries
        ]
        assert started == [1, 0]
        assert sorted(finished) == [0, 1]
    finally:
        for engine in engines:
            engine.client.app.close()


# --- queues with nobody consuming -----------------------------------------------------


@pytest.fixture(scope="module")
def parked_api(redis_server: RedisServer, stack_dir: Path) -> Iterator[ApiServer]:
    """An API on a database no worker consumes; its deadline reaper waits an hour per pass."""
    stack = StackEnv(
        broker_url=redis_server.url(PARKED_DB),
        workdir=stack_dir / "metrics-parked",
        extra={
            "CELERY_HARDER_QUEUES": "celery,parked",
            "CELERY_HARDER_UNACKED_KEYS": "unacked,unacked-parked",
            "CELERY_HARDER_WORKFLOW_POLL_INTERVAL": "3600",
        },
    )
    stack.workdir.mkdir(exist_ok=True)
    r = redis_server.client(PARKED_DB)
    r.flushdb()
    # A past deadline planted before the start: once it is gone, the reaper's first pass
    # is over, and the next one is an hour away.
    r.zadd(keys.WORKFLOW_DEADLINES, {"probe": time.time() - 1})
    with running_api(stack) as api:
        wait_until(lambda: r.zscore(keys.WORKFLOW_DEADLINES, "probe") is None, 30, 0.05, "reaper")
        yield api


def unacked_value(queue: str) -> str:
    """An entry of kombu's unacked hash as Channel.QoS.append writes it."""
    raw = {"body": "W1sxLCAyXSwge30sIHt9XQ==", "headers": {"task": "add"}, "properties": {}}
    return json.dumps([raw, queue, queue])


def test_waiting_by_priority_and_in_flight_equal_what_redis_holds(
    parked_api: ApiServer, redis_server: RedisServer
) -> None:
    r = redis_server.client(PARKED_DB)
    url = redis_server.url(PARKED_DB)
    app = create_celery_app("sender", Settings(broker_url=url, result_backend=url), send_only=True)
    # Celery and kombu pick the lists: priority 4 lands in step 3, 0 in the queue itself.
    sent = {0: 3, 4: 1, 6: 2, 9: 1}
    try:
        for priority, count in sent.items():
            for _ in range(count):
                app.send_task("add", args=[1, 2], queue="parked", priority=priority)
        app.send_task("add", args=[1, 2], queue="celery")
    finally:
        app.close()
    real = {k.decode(): int(r.llen(k)) for k in r.scan_iter(match="parked*", _type="list")}
    assert sorted(real.values()) == [1, 1, 2, 3]
    samples = metrics(parked_api)
    by_priority = {
        int(dict(ls)["priority"]): v
        for (n, ls), v in samples.items()
        if n == mn.QUEUE_WAITING_BY_PRIORITY.series and dict(ls)["queue"] == "parked"
    }
    assert by_priority == {0: 3, 3: 1, 6: 2, 9: 1}
    # The sample of each step is LLEN of the list kombu really wrote for it.
    named = {key: by_priority[step] for step, key in priority_keys("parked")}
    assert named == real
    assert f"parked{PRIORITY_SEPARATOR}6" in real
    assert value(samples, mn.QUEUE_WAITING.series, {"queue": "parked"}) == sum(real.values())
    assert value(samples, mn.QUEUE_WAITING.series, {"queue": "celery"}) == r.llen("celery") == 1
    # In flight: every configured pool's hash, by the queue in each entry.
    r.hset("unacked", "tag-1", unacked_value("celery"))
    r.hset("unacked-parked", mapping={"tag-2": unacked_value("parked"), "tag-3": "junk"})
    r.hset("unacked-unlisted", "tag-4", unacked_value("parked"))  # no pool names it
    samples = metrics(parked_api)
    assert by_label(samples, mn.QUEUE_IN_FLIGHT.series, "queue") == {
        "celery": 1, "parked": 1, "(other)": 1
    }  # fmt: skip


def test_overdue_workflows_are_deadlines_the_reaper_left_behind(
    parked_api: ApiServer, redis_server: RedisServer
) -> None:
    r = redis_server.client(PARKED_DB)
    now = time.time()
    # Grace is 4 reaper periods (4 h here): only deadlines older than that are overdue.
    r.zadd(
        keys.WORKFLOW_DEADLINES,
        {"late-1": now - 20_000, "late-2": now - 15_000, "recent": now - 60, "future": now + 60},
    )
    try:
        assert value(metrics(parked_api), mn.WORKFLOWS_OVERDUE.series) == 2
    finally:
        r.delete(keys.WORKFLOW_DEADLINES)


# --- Redis down or silent --------------------------------------------------------------


def test_metrics_answer_200_without_queue_samples_when_redis_is_down(stack_dir: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    stack = StackEnv(broker_url=dead, workdir=stack_dir / "metrics-dead")
    stack.workdir.mkdir(exist_ok=True)
    with running_api(stack) as api:
        samples = metrics(api)
    assert value(samples, mn.REDIS_UP.series) == 0
    assert not by_label(samples, mn.QUEUE_WAITING.series, "queue")
    assert value(samples, mn.WORKFLOWS_OVERDUE.series) is None
    # The counters are still served.
    assert value(samples, mn.WORKFLOWS_STARTED.series) == 0


def test_a_silent_redis_costs_a_scrape_the_short_timeout_only(stack_dir: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        stack = StackEnv(
            broker_url=url,
            workdir=stack_dir / "metrics-silent",
            extra={"CELERY_HARDER_METRICS_REDIS_TIMEOUT": "0.3"},
        )
        stack.workdir.mkdir(exist_ok=True)
        with running_api(stack) as api:
            started = time.monotonic()
            samples = metrics(api)
            elapsed = time.monotonic() - started
    assert value(samples, mn.REDIS_UP.series) == 0
    scrape_seconds = value(samples, mn.QUEUE_SCRAPE_DURATION.series)
    assert scrape_seconds is not None and 0.3 <= scrape_seconds < 1.0
    assert elapsed < 2.0
