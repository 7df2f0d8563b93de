"""T1: the direct submit path writes what app.send_task writes, and real workers run it.

TaskMessages (celery_harder.publish) builds kombu's Redis message itself, so that the
API sends a task in one round trip. Here the bytes it puts in Redis are compared,
field by field, with those `app.send_task` puts there for the same call (ids, delivery
tags, timestamps, clocks and the sender's pid/hostname aside), for the default queue,
a priority above 0 (a priority sub-list) and another queue; then the fast path's tasks
run on a real prefork worker and their results are read back through it.
"""

import asyncio
import base64
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from celery_harder import keys
from celery_harder.async_client import MAX_CONNECTIONS, AsyncTaskClient
from celery_harder.publish import TaskMessages
from celery_harder.settings import Settings
from celery_harder.task_client import BrokerUnavailable, TaskClient, create_task_client
from tests.support.polling import wait_until
from tests.support.stack import RedisServer, StackEnv, running_worker

COMPARE_DB = 8  # no worker consumes it: what is pushed stays in the lists
RUN_DB = 9  # a worker of this module's own consumes it
QUEUES = ("celery", "cpu")
ID_FIELDS = {"id", "root_id", "correlation_id", "uuid", "delivery_tag"}
SENDER_FIELDS = {"timestamp", "clock", "pid", "hostname", "origin", "utcoffset", "reply_to"}


def decoded(raw: bytes) -> dict[str, Any]:
    """A kombu Redis message with its base64 body decoded."""
    message: dict[str, Any] = json.loads(raw)
    assert message["properties"]["body_encoding"] == "base64"
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def scrub(value: Any) -> Any:
    """`value` with ids and per-sender fields replaced by a placeholder (their type kept)."""
    if isinstance(value, dict):
        return {
            k: (type(v).__name__ if k in ID_FIELDS | SENDER_FIELDS else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


@pytest.fixture(scope="module")
def compare_client(redis_server: RedisServer) -> Iterator[TaskClient]:
    url = redis_server.url(COMPARE_DB)
    client = create_task_client(Settings(broker_url=url, result_backend=url, queues=QUEUES))
    assert client.messages is not None, "the direct path is off for the shipped configuration"
    yield client
    client.app.close()


class Listener:
    """Every task-sent event published for database `db` while it listens (kombu's fanout
    channel for it; other databases' workers publish on their own)."""

    def __init__(self, server: RedisServer, db: int) -> None:
        self.pubsub = server.client().pubsub()
        self.pubsub.subscribe(f"/{db}.celeryev/task.sent")
        self.pubsub.get_message(timeout=2)  # the subscribe confirmation

    def next(self) -> tuple[str, dict[str, Any]]:
        message = self.pubsub.get_message(timeout=5)
        assert message is not None, "no task-sent event was published"
        return message["channel"].decode(), decoded(message["data"])


def pushed(server: RedisServer, key: str) -> dict[str, Any]:
    raw = server.client(COMPARE_DB).rpop(key)
    assert raw is not None, f"nothing was pushed onto {key!r}"
    return decoded(raw)


@pytest.mark.parametrize(
    ("queue", "priority", "key"),
    [
        ("celery", None, "celery"),
        ("celery", 0, "celery"),
        ("celery", 5, "celery\x06\x163"),
        ("celery", 9, "celery\x06\x169"),
        ("cpu", None, "cpu"),
        ("cpu", 7, "cpu\x06\x166"),
    ],
)
def test_direct_message_equals_send_task(
    compare_client: TaskClient,
    redis_server: RedisServer,
    queue: str,
    priority: int | None,
    key: str,
) -> None:
    client, messages = compare_client, compare_client.messages
    assert isinstance(messages, TaskMessages)
    db = redis_server.client(COMPARE_DB)
    db.delete(key)
    listener = Listener(redis_server, COMPARE_DB)
    options = {} if priority is None else {"priority": priority}
    args, kwargs = [2, 3.5], {}

    client.app.send_task("add", args=args, kwargs=kwargs, queue=queue, **options)
    celery_message = pushed(redis_server, key)
    celery_channel, celery_event = listener.next()

    outgoing = messages.build("add", args, kwargs, queue=queue, priority=priority)
    client.send(outgoing)
    ours = pushed(redis_server, key)
    our_channel, our_event = listener.next()

    assert ours["headers"]["id"] == outgoing.task_id
    assert scrub(ours) == scrub(celery_message)
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": queue}
    assert ours["properties"]["priority"] == (priority or 0)
    assert our_channel == celery_channel == f"/{COMPARE_DB}.celeryev/task.sent"
    assert scrub(our_event) == scrub(celery_event)
    assert our_event["body"]["uuid"] == outgoing.task_id
    assert our_event["body"]["type"] == "task-sent"
    assert db.ttl(keys.ISSUED + outgoing.task_id) == pytest.approx(
        client.settings.result_expires, abs=5
    )
    assert db.llen(key) == 0


def test_kwargs_and_time_limits_match(
    compare_client: TaskClient, redis_server: RedisServer
) -> None:
    client, messages = compare_client, compare_client.messages
    assert messages is not None
    kwargs = {"data": {"nested": [1, "two", None]}}
    client.app.send_task(
        "request_info", kwargs=kwargs, queue="celery", time_limit=30, soft_time_limit=20
    )
    celery_message = pushed(redis_server, "celery")
    outgoing = messages.build(
        "request_info", (), kwargs, queue="celery", time_limit=30, soft_time_limit=20
    )
    client.send(outgoing)
    assert scrub(pushed(redis_server, "celery")) == scrub(celery_message)


def test_async_submit_pushes_the_same_message(
    compare_client: TaskClient, redis_server: RedisServer
) -> None:
    task_id = on_loop(compare_client, lambda fast: fast.submit("add", [1, 2], queue="cpu"))
    ours = pushed(redis_server, "cpu")
    compare_client.app.send_task("add", args=[1, 2], queue="cpu")
    assert ours["headers"]["id"] == task_id
    assert scrub(ours) == scrub(pushed(redis_server, "cpu"))
    assert redis_server.client(COMPARE_DB).exists(keys.ISSUED + task_id)


def test_a_burst_beyond_the_pool_waits_instead_of_failing(
    compare_client: TaskClient, redis_server: RedisServer
) -> None:
    # More concurrent submits than connections (MAX_CONNECTIONS) and than redis-py's
    # default pool allows ("Too many connections" was a 503 at 128 clients).
    burst = 4 * MAX_CONNECTIONS

    async def submit_all(fast: AsyncTaskClient) -> list[str]:
        return list(await asyncio.gather(*(fast.submit("add", [i, 1]) for i in range(burst))))

    db = redis_server.client(COMPARE_DB)
    db.delete("celery")
    ids = on_loop(compare_client, submit_all)
    assert len(set(ids)) == burst
    assert db.llen("celery") == burst
    db.delete("celery")


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port


def on_loop(client: TaskClient, call: Callable[[AsyncTaskClient], Awaitable[Any]]) -> Any:
    """Run `call` with an AsyncTaskClient of its own, on a loop of its own."""

    async def main() -> Any:
        fast = AsyncTaskClient(client)
        try:
            return await call(fast)
        finally:
            await fast.close()

    return asyncio.run(main())


def test_async_client_refuses_quickly_when_redis_is_down() -> None:
    with closed_port() as port:
        url = f"redis://127.0.0.1:{port}/0"
        client = create_task_client(Settings(broker_url=url, redis_timeout=1.0))

        async def attempt(fast: AsyncTaskClient) -> float:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await fast.submit("add", [1, 2])
            with pytest.raises(BrokerUnavailable):
                await fast.status(str(uuid.uuid4()))
            return time.monotonic() - started

        assert on_loop(client, attempt) < 3.0


@pytest.fixture(scope="module")
def run_stack(redis_server: RedisServer, stack_dir: Path) -> Iterator[TaskClient]:
    url = redis_server.url(RUN_DB)
    stack = StackEnv(broker_url=url, workdir=stack_dir / "fast-submit")
    stack.workdir.mkdir(exist_ok=True)
    client = create_task_client(Settings(broker_url=url, result_backend=url))
    with running_worker(stack, "fast", concurrency=2):
        yield client
    client.app.close()


def test_fast_path_tasks_run_and_their_results_read_back(
    run_stack: TaskClient, redis_server: RedisServer
) -> None:
    events = Listener(redis_server, RUN_DB)

    async def submit_all(fast: AsyncTaskClient) -> list[str]:
        calls = [fast.submit("add", [i, i]) for i in range(20)]
        calls.append(fast.submit("request_info", kwargs={"data": "fast"}))
        return list(await asyncio.gather(*calls))

    def statuses(ids: list[str]) -> list[Any]:
        return on_loop(run_stack, lambda fast: asyncio.gather(*(fast.status(t) for t in ids)))

    ids = on_loop(run_stack, submit_all)
    sent = [events.next()[1]["body"]["uuid"] for _ in ids]
    assert sorted(sent) == sorted(ids), "one task-sent event per task"

    def all_done() -> bool:
        return all(s is not None and s.state == "SUCCESS" for s in statuses(ids))

    wait_until(all_done, 30, what="fast-path tasks finished")
    found = statuses(ids)
    assert [s.result for s in found[:-1]] == [2 * i for i in range(20)]
    info = found[-1].result
    assert info["task_id"] == ids[-1] and info["task_name"] == "request_info"
    assert info["kwargs"] == {"data": "fast"} and info["root_id"] == ids[-1]
    assert statuses([str(uuid.uuid4())]) == [None]  # never issued: the API's 404
    assert redis.Redis(port=redis_server.port, db=RUN_DB).llen("celery") == 0
