"""T1: the worker's result backend writes a state in one script call and keeps a SUCCESS.

A private redis-server counts the commands (INFO commandstats, which counts the
commands a script runs too) and a subscriber on the task's channel sees what is
published, as the operator and result waiters do.
"""

import base64
import json
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import redis
from celery import Celery
from celery.app.task import Context

from celery_harder.celery_config import create_celery_app
from celery_harder.settings import Settings
from celery_harder.worker_backend import WorkerRedisBackend
from celery_harder_dev.stack import RedisServer
from tests.support.socket_writes import socket_writes


@pytest.fixture
def worker_app(private_redis: RedisServer) -> Iterator[Celery]:
    app = create_celery_app("t", Settings(broker_url=private_redis.url(0)), worker=True)
    assert isinstance(app.backend, WorkerRedisBackend)
    yield app
    app.close()


@pytest.fixture
def r(private_redis: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(private_redis.url(0))


def fresh_task(app: Celery) -> tuple[str, bytes]:
    """A new task id and its result key."""
    task_id = str(uuid.uuid4())
    return task_id, app.backend.get_key_for_task(task_id)


def calls(r: redis.Redis) -> dict[str, int]:
    """Commands since the last CONFIG RESETSTAT, but those that reset and read the count."""
    stats = r.info("commandstats")
    counted = {name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items()}
    return {k: v for k, v in counted.items() if k not in ("config", "info")}


def listening(r: redis.Redis, key: bytes) -> redis.client.PubSub:
    """A subscriber on a task's result channel, as the operator and result waiters are."""
    pubsub = r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(key)
    return pubsub


def published(pubsub: redis.client.PubSub, count: int) -> list[dict[str, object]]:
    """The next `count` metas published on the subscribed channel, within 10 s."""
    seen: list[dict[str, object]] = []
    deadline = time.monotonic() + 10
    while len(seen) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            seen.append(json.loads(message["data"]))
    return seen


def test_a_state_write_is_one_script_call_that_stores_expires_and_publishes(
    worker_app: Celery, r: redis.Redis
) -> None:
    task_id, key = fresh_task(worker_app)
    pubsub = listening(r, key)
    worker_app.backend.mark_as_started(task_id)  # loads the script (one EVALSHA miss)
    r.config_resetstat()
    worker_app.backend.mark_as_done(task_id, 42)
    counts = calls(r)
    # Celery's own backend: GET, then MULTI, SETEX, PUBLISH, EXEC in a second round trip.
    assert counts == {"evalsha": 1, "get": 1, "set": 1, "publish": 1}, counts
    meta = json.loads(r.get(key) or b"{}")
    assert (meta["status"], meta["result"], meta["task_id"]) == ("SUCCESS", 42, task_id)
    assert 0 < r.ttl(key) <= Settings().result_expires
    assert [m["status"] for m in published(pubsub, 2)] == ["STARTED", "SUCCESS"]


def test_a_stored_success_is_never_overwritten_nor_republished(
    worker_app: Celery, r: redis.Redis
) -> None:
    task_id, key = fresh_task(worker_app)
    worker_app.backend.mark_as_done(task_id, 1)
    pubsub = listening(r, key)
    # A late copy of the task (a redelivery) ends in FAILURE after the original succeeded.
    worker_app.backend.mark_as_failure(task_id, RuntimeError("late copy"))
    worker_app.backend.mark_as_started(task_id)
    meta = json.loads(r.get(key) or b"{}")
    assert (meta["status"], meta["result"]) == ("SUCCESS", 1)
    assert published(pubsub, 1) == []


def chord_member(group_id: str, index: int, body: Any) -> tuple[str, Context]:
    """A header task of the chord `group_id` as the worker's tracer sees it."""
    task_id = str(uuid.uuid4())
    request = Context(id=task_id, group=group_id, group_index=index, chord=body)
    return task_id, request


def run_chord(app: Celery, r: redis.Redis, size: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Complete a chord's `size` header tasks (results 0..size-1) through mark_as_done;
    the socket writes of each but the last, which also sends the body."""
    group_id = str(uuid.uuid4())
    app.backend.set_chord_size(group_id, size)
    writes = []
    for i in range(size):
        task_id, request = chord_member(group_id, i, dict(app.signature("xsum")))
        writes.append(socket_writes(monkeypatch, partial(app.backend.mark_as_done, task_id, i,
                                                        request=request)))  # fmt: skip
        meta = json.loads(r.get(app.backend.get_key_for_task(task_id)) or b"{}")
        assert (meta["status"], meta["result"]) == ("SUCCESS", i)
    return writes[:-1]


def sent_bodies(r: redis.Redis) -> list[Any]:
    """The positional arguments of every xsum message queued on the default queue."""
    found = []
    for raw in r.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "xsum":
            found.append(json.loads(base64.b64decode(message["body"]))[0])
    return found


def test_a_chord_header_tasks_success_and_count_share_one_round_trip(
    worker_app: Celery, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_app.backend.mark_as_started(str(uuid.uuid4()))  # scripts loaded, connection made
    run_chord(worker_app, r, 2, monkeypatch)  # Celery's chord script loaded too
    r.delete("celery")
    writes = run_chord(worker_app, r, 4, monkeypatch)
    assert writes == [1, 1, 1]  # Celery's backend: the store, then the count, two each
    assert sent_bodies(r) == [[[0, 1, 2, 3]]]  # the body, once, with every result in order


def test_scripts_redis_lost_are_loaded_again_and_nothing_counts_twice(
    worker_app: Celery, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    r.script_flush()  # as after a Redis restart: neither script is known
    run_chord(worker_app, r, 3, monkeypatch)
    # A count run twice would have sent the body at the second task, with two results.
    assert sent_bodies(r) == [[[0, 1, 2]]]


def test_a_chord_task_without_a_group_still_stores_its_success(
    worker_app: Celery, r: redis.Redis
) -> None:
    task_id = str(uuid.uuid4())
    request = Context(id=task_id, group=None, chord=dict(worker_app.signature("xsum")))
    worker_app.backend.mark_as_done(task_id, 7, request=request)
    meta = json.loads(r.get(worker_app.backend.get_key_for_task(task_id)) or b"{}")
    assert (meta["status"], meta["result"]) == ("SUCCESS", 7)
