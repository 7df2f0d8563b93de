"""T1: the worker's fetch (background.pop_and_record) takes what kombu's BRPOP takes.

A real kombu connection on a private redis-server consumes with acks on, once through
kombu's own fetch and once through the script: the order of delivery over priorities
and queues, the unacked record each leaves and the commands each sends (INFO
commandstats) are compared. drain_events drives kombu's poller as the worker's event
loop does: the fetch is sent at the poll's start and read when its socket is readable.
"""

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.transport import redis as kombu_redis

from background import pop_and_record, unacked
from celery_harder_dev.polling import wait_until
from celery_harder_dev.stack import RedisServer

EXCHANGE = Exchange("fetch-test", type="direct")
QUEUES = [Queue(f"fetch-{name}", EXCHANGE, routing_key=f"key-{name}",
                max_priority=9) for name in ("a", "b")]  # fmt: skip


@pytest.fixture
def r(private_redis: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(private_redis.url(0))


@pytest.fixture
def kombu_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu's own fetch and QoS for the test's start, and again after it."""
    for name, upstream in [("_brpop_start", pop_and_record.UPSTREAM_BRPOP_START),
                           ("_brpop_read", pop_and_record.UPSTREAM_BRPOP_READ),
                           ("basic_consume", pop_and_record.UPSTREAM_BASIC_CONSUME)]:  # fmt: skip
        monkeypatch.setattr(kombu_redis.Channel, name, upstream)
    for name in ("append", "ack", "reject", "restore_visible", "restore_unacked_once"):
        monkeypatch.setattr(kombu_redis.QoS, name, getattr(unacked, f"UPSTREAM_{name.upper()}"))


@pytest.fixture
def installed(kombu_fetch: None) -> None:
    unacked.install()
    pop_and_record.install()


def calls(r: redis.Redis, *commands: str) -> dict[str, int]:
    stats = r.info("commandstats")
    return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in commands}


def publish(url: str, *messages: tuple[str, str, int]) -> None:
    """Publish (body, queue's letter, priority) triples."""
    with Connection(url) as conn:
        producer = Producer(conn)
        for body, name, priority in messages:
            producer.publish(body, exchange=EXCHANGE, routing_key=f"key-{name}",
                             priority=priority, declare=QUEUES)  # fmt: skip


class Taker:
    """A consumer of both queues with acks on; `take` drains one message."""

    def __init__(self, url: str, no_ack: bool = False, **transport_options: Any) -> None:
        self.conn = Connection(url, transport_options=transport_options)
        self.channel = self.conn.default_channel
        self.got: list[Any] = []
        self.consumer = Consumer(self.channel, QUEUES, callbacks=[self._on_message],
                                 no_ack=no_ack)  # fmt: skip
        self.consumer.qos(prefetch_count=1)
        self.consumer.consume()

    def _on_message(self, body: Any, message: Any) -> None:
        self.got.append(message)

    def take(self, timeout: float = 5) -> Any:
        """The next message, unacknowledged."""
        before = len(self.got)
        self.conn.drain_events(timeout=timeout)
        assert len(self.got) == before + 1
        return self.got[-1]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def taker(private_redis: RedisServer, installed: None) -> Iterator[Taker]:
    taker = Taker(private_redis.url(0))
    yield taker
    taker.close()


def record(r: redis.Redis, tag: str) -> tuple[Any, float | None]:
    raw = r.hget("unacked", tag)
    return (json.loads(raw) if raw else None), r.zscore("unacked_index", tag)


def score_of(taker: Taker, tag: str) -> float:
    """The score the batched ack will expect `tag`'s record to hold."""
    return float(taker.channel.qos.__dict__[unacked._SCORES][tag])


# queue a holds the lower priorities, b the higher: BRPOP's key order (each priority step
# across the queues before the next step) takes b's first wherever the cycle starts
MIXED = [("a0", "a", 0), ("a0'", "a", 0), ("a5", "a", 5), ("b9", "b", 9), ("b5", "b", 5),
         ("b9'", "b", 9), ("a5'", "a", 5), ("b0", "b", 0)]  # fmt: skip


def drain_order(url: str) -> list[str]:
    taker = Taker(url)
    try:
        order = []
        for _ in MIXED:
            message = taker.take()
            order.append(message.payload)
            message.ack()
        return order
    finally:
        taker.close()


def test_messages_come_in_kombus_order_over_priorities_and_queues(
    private_redis: RedisServer, r: redis.Redis, kombu_fetch: None
) -> None:
    url = private_redis.url(0)
    publish(url, *MIXED)
    upstream = drain_order(url)
    unacked.install()
    pop_and_record.install()
    publish(url, *MIXED)
    before = calls(r, "evalsha", "brpop")
    ours = drain_order(url)
    sent = {c: n - before[c] for c, n in calls(r, "evalsha", "brpop").items()}
    assert ours == upstream
    assert sorted(upstream) == sorted(body for body, _, _ in MIXED)
    assert upstream != [body for body, _, _ in MIXED]  # priorities reordered them
    # one script call per message (plus the acks' and the empty queue's), no BRPOP
    assert sent["brpop"] == 0 and sent["evalsha"] >= len(MIXED)
    assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0


def test_a_fetched_message_is_recorded_as_kombu_records_it(
    taker: Taker, private_redis: RedisServer, r: redis.Redis
) -> None:
    publish(private_redis.url(0), ("warm-up", "a", 0))
    taker.take().ack()  # the first fetch loads the script
    publish(private_redis.url(0), ("recorded", "b", 0))
    before = calls(r, "evalsha", "brpop", "zadd", "hset", "rpop", "multi")
    message = taker.take()
    sent = {c: n - before[c] for c, n in calls(r, *before).items()}
    payload, score = record(r, message.delivery_tag)
    assert payload == [message._raw, EXCHANGE.name, "key-b"]  # kombu's append writes this
    assert score == score_of(taker, message.delivery_tag)
    # one call took and recorded it: no BRPOP, no append of its own
    assert sent == {"evalsha": 1, "brpop": 0, "zadd": 1, "hset": 1, "rpop": 1, "multi": 0}
    message.ack()  # no event loop: written at once
    assert record(r, message.delivery_tag) == (None, None)


def test_an_empty_queue_is_waited_on_with_brpop_and_the_script_comes_back(
    taker: Taker, private_redis: RedisServer, r: redis.Redis
) -> None:
    with pytest.raises(socket.timeout):
        taker.conn.drain_events(timeout=0.3)  # nothing queued: the fetch blocks in BRPOP
    assert calls(r, "brpop")["brpop"] >= 1
    publish(private_redis.url(0), ("while waiting", "a", 0), ("next", "a", 0))
    first = taker.take()  # BRPOP's: kombu's append records it
    assert first.payload == "while waiting" and record(r, first.delivery_tag)[0] is not None
    first.ack()
    before = calls(r, "brpop", "evalsha")
    second = taker.take()
    assert second.payload == "next"
    assert calls(r, "brpop")["brpop"] == before["brpop"]  # the script took it
    assert calls(r, "evalsha")["evalsha"] > before["evalsha"]
    second.ack()


def test_the_fetch_survives_a_script_flush(
    taker: Taker, private_redis: RedisServer, r: redis.Redis
) -> None:
    publish(private_redis.url(0), ("before", "a", 0))
    taker.take().ack()
    r.script_flush()  # as a Redis restart leaves it: NOSCRIPT, nothing popped, load again
    publish(private_redis.url(0), ("after", "a", 0), ("again", "a", 0))
    before = calls(r, "brpop")["brpop"]
    for body in ("after", "again"):
        message = taker.take()
        assert message.payload == body and record(r, message.delivery_tag)[0] is not None
        message.ack()
    assert calls(r, "brpop")["brpop"] == before  # the script, loaded again, took both


KILLED_WORKER = """
import sys
from background import pop_and_record, unacked
unacked.install()
pop_and_record.install()
sys.path.insert(0, sys.argv[2])
from test_pop_and_record import Taker
taker = Taker(sys.argv[1])
taker.conn.transport.cycle.on_poll_start()  # the fetch is sent, as each loop turn does
print("sent", flush=True)
sys.stdin.read()  # killed while waiting: the reply is never read
"""


def test_a_worker_killed_before_it_reads_the_reply_leaves_the_message_to_be_restored(
    private_redis: RedisServer, r: redis.Redis, installed: None
) -> None:
    publish(private_redis.url(0), ("taken by a worker that dies", "a", 0))
    here = str(Path(__file__).parent)
    with subprocess.Popen([sys.executable, "-c", KILLED_WORKER, private_redis.url(0), here],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as worker:  # fmt: skip
        assert worker.stdout is not None and worker.stdout.readline() == b"sent\n"
        wait_until(lambda: r.llen("fetch-a") == 0, 10, "the fetch popped the message")
        worker.kill()  # kill -9, as the OOM killer or a node's loss does
        worker.wait()
    assert r.hlen("unacked") == 1  # popped with its record: nothing lost
    with Connection(private_redis.url(0), transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible()  # another worker's periodic sweep
    assert r.llen("fetch-a") == 1 and r.hlen("unacked") == 0


def test_a_channel_closed_with_a_reply_in_flight_puts_the_message_back(
    taker: Taker, private_redis: RedisServer, r: redis.Redis
) -> None:
    publish(private_redis.url(0), ("in flight at shutdown", "a", 0))
    taker.conn.transport.cycle.on_poll_start()
    taker.close()  # kombu reads the reply and restores what it delivered
    assert [m.payload for m in taker.got] == ["in flight at shutdown"]
    assert r.llen("fetch-a") == 1 and r.hlen("unacked") == 0


def test_a_reply_held_while_the_prefetch_is_full_is_delivered_when_credit_returns(
    taker: Taker, private_redis: RedisServer, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(private_redis.url(0), ("held back", "a", 0))
    cycle = taker.conn.transport.cycle
    cycle.on_poll_start()
    (fd,) = cycle.fds
    # Credit runs out while the reply is on its way (kombu's paused-BRPOP path); the
    # predicate stands in for a full prefetch, which a single consumer cannot reach here.
    with monkeypatch.context() as full:
        full.setattr(taker.channel.qos, "can_consume", lambda: False)
        cycle.on_readable(fd)
    assert fd in cycle._paused_brpop and taker.got == []
    assert r.hlen("unacked") == 1  # recorded while held
    message = taker.take()  # credit back: kombu polls the socket again and reads the reply
    assert message.payload == "held back"
    assert score_of(taker, message.delivery_tag) == record(r, message.delivery_tag)[1]
    message.ack()
    assert r.hlen("unacked") == 0


def test_a_consumer_without_acks_keeps_kombus_brpop(
    private_redis: RedisServer, r: redis.Redis, installed: None
) -> None:
    taker = Taker(private_redis.url(0), no_ack=True)
    try:
        publish(private_redis.url(0), ("no ack", "a", 0))
        before = calls(r, "evalsha", "brpop")
        assert taker.take().payload == "no ack"
        assert {c: n - before[c] for c, n in calls(r, "evalsha", "brpop").items()} == {
            "evalsha": 0, "brpop": 1,
        }  # fmt: skip
        assert r.hlen("unacked") == 0  # no record that no ack would ever remove
    finally:
        taker.close()


def test_a_cancelled_consumer_without_acks_gives_the_channel_back_to_the_script(
    taker: Taker, private_redis: RedisServer, r: redis.Redis
) -> None:
    # As Celery's start-up sync does on the task channel: a reply consumer, no acks.
    replies = Queue("fetch-replies", EXCHANGE, routing_key="key-replies")
    sync = Consumer(taker.channel, [replies], no_ack=True)
    sync.consume()
    publish(private_redis.url(0), ("during the sync", "a", 0))
    before = calls(r, "brpop")["brpop"]
    taker.take().ack()
    assert calls(r, "brpop")["brpop"] == before + 1  # BRPOP while the sync consumes
    sync.cancel()
    publish(private_redis.url(0), ("after it", "a", 0))
    before = calls(r, "brpop")["brpop"]
    message = taker.take()
    assert message.payload == "after it" and calls(r, "brpop")["brpop"] == before
    message.ack()


def test_a_global_key_prefix_keeps_kombus_brpop(
    private_redis: RedisServer, r: redis.Redis, installed: None
) -> None:
    taker = Taker(private_redis.url(0), global_keyprefix="tenant:")
    try:
        with Connection(private_redis.url(0),
                        transport_options={"global_keyprefix": "tenant:"}) as conn:  # fmt: skip
            Producer(conn).publish("prefixed", exchange=EXCHANGE, routing_key="key-a",
                                   declare=QUEUES)  # fmt: skip
        before = calls(r, "brpop", "evalsha")
        message = taker.take()
        assert message.payload == "prefixed"
        assert {c: n - before[c] for c, n in calls(r, *before).items()} == {
            "brpop": 1, "evalsha": 0,
        }  # fmt: skip
        assert r.hlen("tenant:unacked") == 1  # kombu's append, under the prefix
        message.ack()
        assert r.hlen("tenant:unacked") == 0
    finally:
        taker.close()


def test_a_message_the_script_cannot_read_is_recorded_by_kombus_append(
    taker: Taker, private_redis: RedisServer, r: redis.Redis
) -> None:
    publish(private_redis.url(0), ("odd tag", "a", 0))
    item = json.loads(r.lpop("fetch-a") or b"")
    item["properties"]["delivery_tag"] = 42  # a producer outside kombu: a number
    r.lpush("fetch-a", json.dumps(item))
    message = taker.take()
    assert message.payload == "odd tag"
    assert record(r, "42")[0] is not None  # written by append, as kombu would
    message.ack()
    assert r.hlen("unacked") == 0


def test_a_record_redis_refuses_to_write_leaves_the_message_in_its_queue(
    private_redis: RedisServer, r: redis.Redis
) -> None:
    publish(private_redis.url(0), ("no room", "a", 0))
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)  # full: Redis refuses every write that adds memory
    try:
        with pytest.raises(redis.ResponseError, match="OOM"):
            r.eval(pop_and_record.POP, 3, "fetch-a", "unacked_index", "unacked", 1.0)
    finally:
        r.config_set("maxmemory", 0)
    assert r.llen("fetch-a") == 1 and r.hlen("unacked") == 0
