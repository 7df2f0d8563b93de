"""T1: the worker's unacked bookkeeping (background.unacked) writes what kombu's does.

A real kombu channel on a private redis-server delivers a message with acks on, once
through kombu's own QoS methods and once through the scripts; INFO commandstats counts
the commands each sent.
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from background import unacked
from celery_harder_dev.stack import RedisServer

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


def test_the_scripts_survive_a_script_flush(
    channel: Any, r: redis.Redis, kombu_methods: None
) -> None:
    unacked.install()
    take_and_ack(channel, r, "before")
    r.script_flush()  # as a Redis restart leaves it: EVALSHA gets NOSCRIPT, then loads
    take_and_ack(channel, r, "after")
