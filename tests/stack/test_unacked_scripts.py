"""T1: the worker's unacked bookkeeping (background.unacked) writes what kombu's does.

A real kombu channel on a private redis-server delivers a message with acks on, once
through kombu's own QoS methods and once through the scripts; INFO commandstats counts
the commands each sent. With a kombu event loop set, as a worker's main process has,
acks wait for one batched script call; the tests drive that loop's timers by hand.
"""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.asynchronous import Hub, set_event_loop
from kombu.transport import redis as kombu_redis

from background import unacked
from celery_harder_dev.polling import wait_until
from celery_harder_dev.stack import AofRedis, RedisServer, aof_redis

QUEUE = "unacked-test"


@pytest.fixture
def channel(private_redis: RedisServer) -> Iterator[Any]:
    with Connection(private_redis.url(0)) as conn:
        yield conn.default_channel


@pytest.fixture
def r(private_redis: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(private_redis.url(0))


def calls(r: redis.Redis, *commands: str) -> dict[str, int]:
    stats = r.info("commandstats")
    return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in commands}


def deliver(channel: Any, r: redis.Redis, body: str) -> tuple[Any, dict[str, int]]:
    """Publish `body` and take it with acks on; the commands the take's bookkeeping sent."""
    with Connection(channel.connection.client.as_uri(include_password=True)) as conn:
        # an exchange and a routing key of their own: the record holds both
        exchange = Exchange(f"{QUEUE}-exchange", type="direct")
        queue = Queue(QUEUE, exchange, routing_key=f"{QUEUE}-key")
        conn.Producer().publish(body, exchange=exchange, routing_key=queue.routing_key,
                                declare=[queue])  # fmt: skip
    before = calls(r, "evalsha", "multi", "exec", "zadd", "hset")
    message = channel.basic_get(QUEUE, no_ack=False)
    assert message is not None
    after = calls(r, "evalsha", "multi", "exec", "zadd", "hset")
    return message, {c: after[c] - before[c] for c in after}


def record(channel: Any, r: redis.Redis, tag: str) -> tuple[list[Any], float | None]:
    raw = r.hget(channel.unacked_key, tag)
    return (json.loads(raw) if raw else []), r.zscore(channel.unacked_index_key, tag)


@pytest.fixture
def kombu_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu's own QoS.append and ack for the test's start, and again after it."""
    monkeypatch.setattr(kombu_redis.QoS, "append", unacked.UPSTREAM_APPEND)
    monkeypatch.setattr(kombu_redis.QoS, "ack", unacked.UPSTREAM_ACK)
    monkeypatch.setattr(kombu_redis.QoS, "reject", unacked.UPSTREAM_REJECT)
    monkeypatch.setattr(kombu_redis.QoS, "restore_visible", unacked.UPSTREAM_RESTORE_VISIBLE)
    monkeypatch.setattr(
        kombu_redis.QoS, "restore_unacked_once", unacked.UPSTREAM_RESTORE_UNACKED_ONCE
    )


def take_and_ack(channel: Any, r: redis.Redis, body: str) -> tuple[list[Any], dict[str, int]]:
    t0 = time.time()
    message, sent = deliver(channel, r, body)
    payload, score = record(channel, r, message.delivery_tag)
    assert score is not None and t0 <= score <= time.time()
    message.ack()
    assert r.hlen(channel.unacked_key) == 0 and r.zcard(channel.unacked_index_key) == 0
    return payload, sent


def test_a_delivery_is_recorded_as_kombu_records_it_and_an_ack_forgets_it(
    channel: Any, r: redis.Redis, kombu_methods: None
) -> None:
    upstream, upstream_sent = take_and_ack(channel, r, "same body")
    unacked.install()  # kombu_methods puts kombu's own back after the test
    take_and_ack(channel, r, "warm-up")  # the first call of a script loads it (NOSCRIPT)
    ours, our_sent = take_and_ack(channel, r, "same body")

    def without_ids(payload: list[Any]) -> list[Any]:  # each delivery has its own tags
        message = json.loads(json.dumps(payload))
        message[0]["properties"].pop("delivery_tag")
        message[0]["headers"] = message[0].get("headers") or {}
        return message

    assert upstream[1:] == [f"{QUEUE}-exchange", f"{QUEUE}-key"]
    assert without_ids(ours) == without_ids(upstream)
    assert upstream_sent == {"evalsha": 0, "multi": 1, "exec": 1, "zadd": 1, "hset": 1}
    # the script's own ZADD and HSET count too: one command sent, the same writes
    assert our_sent == {"evalsha": 1, "multi": 0, "exec": 0, "zadd": 1, "hset": 1}


def test_an_unacked_delivery_is_restored_by_kombu(
    channel: Any, r: redis.Redis, kombu_methods: None
) -> None:
    unacked.install()
    message, _ = deliver(channel, r, "restore me")
    assert r.llen(QUEUE) == 0 and r.hlen(channel.unacked_key) == 1
    channel.qos.restore_unacked()  # what a worker's shutdown (and restore_visible) runs
    assert r.hlen(channel.unacked_key) == 0 and r.zcard(channel.unacked_index_key) == 0
    again = channel.basic_get(QUEUE, no_ack=False)
    assert again is not None and again.body == message.body
    again.ack()


def test_an_ack_for_a_delivery_recorded_elsewhere_removes_its_record(
    channel: Any, r: redis.Redis, kombu_methods: None
) -> None:
    # Recorded by kombu's own append (as before install()): no score of ours to compare,
    # so the ACK script's '' removes whatever record the tag has.
    message, _ = deliver(channel, r, "recorded by kombu")
    assert r.hlen(channel.unacked_key) == 1
    unacked.install()
    message.ack()  # no event loop set: written at once
    assert r.hlen(channel.unacked_key) == 0 and r.zcard(channel.unacked_index_key) == 0


def test_the_scripts_survive_a_script_flush(
    channel: Any, r: redis.Redis, kombu_methods: None
) -> None:
    unacked.install()
    take_and_ack(channel, r, "before")
    r.script_flush()  # as a Redis restart leaves it: EVALSHA gets NOSCRIPT, then loads
    take_and_ack(channel, r, "after")


@pytest.fixture
def event_loop(kombu_methods: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The scripts installed and a kombu event loop current, as in a worker's main process."""
    unacked.install()
    monkeypatch.setattr(unacked, "PENDING", unacked.PendingAcks())  # no earlier test's acks
    hub = Hub()
    set_event_loop(hub)
    try:
        yield hub
    finally:
        set_event_loop(None)
        hub.close()


def records(channel: Any, r: redis.Redis) -> tuple[int, int]:
    return int(r.hlen(channel.unacked_key)), int(r.zcard(channel.unacked_index_key))


def run_timers_until(hub: Hub, check: Any, what: str) -> None:
    """Fire the loop's due timers, as the worker's loop does each turn, until `check`."""

    def fired() -> bool:
        hub.fire_timers(propagate=(Exception,))
        return bool(check())

    wait_until(fired, 5, what, interval=0.005)


def publish(channel: Any, *bodies: str) -> list[Any]:
    """Publish `bodies` to the test queue and take each with acks on."""
    for body in bodies:
        channel.connection.client.SimpleQueue(QUEUE).put(body)
    taken = [channel.basic_get(QUEUE, no_ack=False) for _ in bodies]
    assert all(m is not None for m in taken)
    return taken


def test_acks_on_the_event_loop_are_removed_by_one_script_call(
    channel: Any, r: redis.Redis, event_loop: Hub
) -> None:
    (warm_up,) = publish(channel, "warm-up")  # the first call of a script loads it
    warm_up.ack()
    run_timers_until(event_loop, lambda: records(channel, r) == (0, 0), "the warm-up's ack")
    messages = publish(channel, *[f"task {i}" for i in range(5)])
    assert records(channel, r) == (5, 5)
    before = calls(r, "evalsha", "zrem", "hdel")
    for message in messages:
        message.ack()
    # kombu forgets the messages at once; their records wait for the batch
    assert channel.qos._dirty == {m.delivery_tag for m in messages}
    assert records(channel, r) == (5, 5)
    assert calls(r, "evalsha")["evalsha"] == before["evalsha"]
    run_timers_until(event_loop, lambda: records(channel, r) == (0, 0), "the batch written")
    after = calls(r, "evalsha", "zrem", "hdel")
    assert {c: after[c] - before[c] for c in after} == {"evalsha": 1, "zrem": 5, "hdel": 5}


def test_an_ack_from_another_thread_is_written_at_once(
    channel: Any, r: redis.Redis, event_loop: Hub
) -> None:
    (message,) = publish(channel, "from a pool thread")
    worker_thread = threading.Thread(target=message.ack)
    worker_thread.start()
    worker_thread.join()
    assert records(channel, r) == (0, 0)  # no timer fired: the thread wrote it itself


def test_a_closing_channel_writes_the_acks_it_holds(
    private_redis: RedisServer, r: redis.Redis, event_loop: Hub
) -> None:
    with Connection(private_redis.url(0)) as conn:
        channel = conn.default_channel
        for message in publish(channel, "one", "two"):
            message.ack()
        assert records(channel, r) == (2, 2)
    assert records(channel, r) == (0, 0)  # a worker's shutdown closes its channel so
    assert r.llen(QUEUE) == 0  # and nothing acknowledged is put back in the queue


def test_a_redelivered_tag_keeps_the_record_of_its_new_delivery(
    channel: Any, r: redis.Redis, event_loop: Hub
) -> None:
    (first,) = publish(channel, "delivered twice")
    first.ack()  # held for the batch
    # Another worker's restore_visible (or a requeue) puts it back before the batch goes.
    channel.qos.restore_by_tag(first.delivery_tag)
    second = channel.basic_get(QUEUE, no_ack=False)
    assert second is not None and second.delivery_tag == first.delivery_tag
    run_timers_until(event_loop, lambda: not unacked.PENDING.by_keys, "the batch written")
    assert records(channel, r) == (1, 1)  # the second delivery is still unacknowledged
    second.ack()
    run_timers_until(event_loop, lambda: records(channel, r) == (0, 0), "its own ack")


@pytest.fixture
def killable(tmp_path: Path) -> Iterator[AofRedis]:
    with aof_redis(tmp_path / "aof") as server:
        yield server


def test_acks_whose_write_failed_are_written_after_redis_comes_back(
    killable: AofRedis, event_loop: Hub
) -> None:
    r = killable.client()
    with Connection(killable.url(), transport_options={"max_retries": 0}) as conn:
        channel = conn.default_channel
        for message in publish(channel, "acked", "while", "redis is down"):
            message.ack()
        killable.kill()
        run_timers_until(event_loop, lambda: not event_loop.timer.queue, "the failed flush")
        assert sum(len(args) for args in unacked.PENDING.by_keys.values()) == 6  # kept
        killable.start()  # the same append-only file: the records are still there
        assert records(channel, r) == (3, 3)
        channel.qos.restore_visible()  # kombu's periodic sweep retries the write first
        assert records(channel, r) == (0, 0)
        assert r.llen(QUEUE) == 0


def test_a_channel_with_a_global_key_prefix_keeps_kombus_records_under_it(
    private_redis: RedisServer, r: redis.Redis, kombu_methods: None
) -> None:
    unacked.install()
    options = {"global_keyprefix": "tenant:"}
    with Connection(private_redis.url(0), transport_options=options) as conn:
        channel = conn.default_channel
        conn.SimpleQueue(QUEUE).put("prefixed")
        message = channel.basic_get(QUEUE, no_ack=False)
        assert message is not None
        # both keys under the prefix, where kombu's restore reads them
        assert r.hlen("tenant:unacked") == 1 and r.zcard("tenant:unacked_index") == 1
        assert not r.exists("unacked") and not r.exists("unacked_index")
        message.ack()
        assert r.hlen("tenant:unacked") == 0 and r.zcard("tenant:unacked_index") == 0
