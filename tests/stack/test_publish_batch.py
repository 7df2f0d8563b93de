"""T1: a canvas's sends in kombu's publish batch, on a real redis-server and kombu.

`batched_sends` holds what a client app sends (task messages and task-sent events)
until the block ends, in pipelined round trips, the chord's header included (its
apply_async drops the producer it is given); a block that raises sends nothing, and
other threads' sends are not held. The messages are Celery's own either way.
"""

import base64
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from celery_harder.publish_batch import BATCH_COMMANDS, batched_sends
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder_dev.stack import RedisServer
from tests.support.socket_writes import socket_writes

DB = 13  # no worker consumes it (test_fast_profile.py has 12): what is sent stays
PER_MESSAGE = {"id", "root_id", "parent_id", "group", "correlation_id", "delivery_tag"}


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[TaskClient]:
    redis_server.client(DB).flushdb()
    url = redis_server.url(DB)
    client = create_task_client(Settings(broker_url=url, result_backend=url))
    yield client
    client.app.close()


def queued(server: RedisServer) -> list[dict[str, Any]]:
    """The messages in the default queue, oldest first."""
    return [json.loads(raw) for raw in reversed(server.client(DB).lrange("celery", 0, -1))]


def chord(n: int) -> dict[str, Any]:
    return {
        "chord": {
            "header": [{"task": "add", "args": [i, i]} for i in range(n)],
            "body": {"task": "xsum"},
        }
    }


def test_a_chord_is_sent_in_a_few_round_trips_not_one_per_message(
    client: TaskClient, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = WorkflowEngine(client)
    engine.submit(chord(1))  # connections made, queue bound: what every later chord skips
    redis_server.client(DB).delete("celery")
    planned = engine.plan(chord(100))
    writes = socket_writes(monkeypatch, lambda: engine.dispatch(planned))
    messages = queued(redis_server)
    assert len(messages) == 100  # the header; the body waits for it
    headers = [m["headers"] for m in messages]
    sent = {h["id"] for h in headers}
    assert len(sent) == 100 and sent < {leaf.task_id for leaf in planned.leaves}  # no body
    embeds = [json.loads(base64.b64decode(m["body"]))[2] for m in messages]
    assert len({h["group"] for h in headers}) == 1 and all(e["chord"] for e in embeds)
    # The record (2), the chord's counter (2), the dispatch mark (1) and the batch's
    # flushes; the 100 messages and 100 task-sent events one by one were 200 writes.
    assert writes <= 5 + math.ceil(200 / BATCH_COMMANDS), writes


def test_a_block_that_raises_sends_nothing(client: TaskClient, redis_server: RedisServer) -> None:
    app = client.app
    with pytest.raises(RuntimeError, match="changed my mind"), batched_sends(app):
        for i in range(3):
            app.send_task("add", [i, i])
        raise RuntimeError("changed my mind")
    assert queued(redis_server) == []
    with batched_sends(app):
        for i in range(3):
            app.send_task("add", [i, i])
        assert queued(redis_server) == []  # held until the block ends
    assert [m["headers"]["argsrepr"] for m in queued(redis_server)] == [
        "[0, 0]", "[1, 1]", "[2, 2]",
    ]  # fmt: skip


def test_another_threads_sends_are_not_held(client: TaskClient, redis_server: RedisServer) -> None:
    app = client.app
    with batched_sends(app):
        app.send_task("add", [1, 1])
        other = threading.Thread(target=lambda: app.send_task("add", [2, 2]))
        other.start()
        other.join()
        assert [m["headers"]["argsrepr"] for m in queued(redis_server)] == ["[2, 2]"]
    assert len(queued(redis_server)) == 2


def test_a_batched_message_is_the_one_celery_sends_alone(
    client: TaskClient, redis_server: RedisServer
) -> None:
    app = client.app
    app.send_task("add", [1, 2], queue="celery")
    with batched_sends(app):
        app.send_task("add", [1, 2], queue="celery")
    alone, batched = queued(redis_server)

    def scrub(message: dict[str, Any]) -> dict[str, Any]:
        headers = {k: v for k, v in message["headers"].items() if k not in PER_MESSAGE}
        properties = {k: v for k, v in message["properties"].items() if k not in PER_MESSAGE}
        return {**message, "headers": headers, "properties": properties}

    assert scrub(alone) == scrub(batched)
