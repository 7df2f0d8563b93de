"""T0: the hot-path changes: one kombu client per channel, batched task events, hiredis."""

from functools import partial
from typing import Any

import redis
import redis.asyncio
from kombu.transport import redis as kombu_redis
from redis._parsers import _AsyncHiredisParser, _HiredisParser

from background import catalog_only, deferred_flush
from background.catalog_only import CatalogOnlyConsumer
from celery_harder import kombu_client


class FakePool:
    def __init__(self) -> None:
        self.connection_kwargs: dict[str, Any] = {}


def test_a_channel_builds_one_sync_client_per_pool(monkeypatch) -> None:
    kombu_client.install()
    kombu_client.install()  # idempotent
    built: list[Any] = []

    class Channel:
        _create_client = kombu_redis.Channel._create_client
        pool = FakePool()
        async_pool = FakePool()

        def Client(self, **kwargs: Any) -> object:
            built.append(kwargs)
            return object()

    channel = Channel()
    first = channel._create_client()
    assert channel._create_client() is first and len(built) == 1
    channel._create_client(asynchronous=True)  # the poller's client is kombu's own
    assert len(built) == 2
    channel.pool = FakePool()  # a new pool (reconnect): a new client on it
    assert channel._create_client() is not first and built[-1]["connection_pool"] is channel.pool


class FakeHub:
    def __init__(self) -> None:
        self.later: list[tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any, *args: Any) -> None:
        self.later.append((delay, partial(callback, *args)))


def test_buffered_task_events_are_flushed_once_per_interval(monkeypatch) -> None:
    consumer = CatalogOnlyConsumer.__new__(CatalogOnlyConsumer)
    consumer.hub = FakeHub()
    flushes: list[int] = []
    consumer._flush_events = lambda: flushes.append(1)  # type: ignore[method-assign]
    clock = [100.0]
    monkeypatch.setattr(deferred_flush.time, "monotonic", lambda: clock[0])
    for _ in range(5):  # five events in one interval: one flush scheduled
        consumer.on_send_event_buffered()
    assert [d for d, _ in consumer.hub.later] == [catalog_only.EVENT_FLUSH_DELAY]
    consumer.hub.later.pop()[1]()
    assert flushes == [1]
    consumer.on_send_event_buffered()  # the next event schedules the next flush
    assert len(consumer.hub.later) == 1
    # A scheduled flush that never ran (the timer was cleared by a restart) is not waited
    # for forever: after EVENT_FLUSH_STALE another one is scheduled.
    clock[0] += catalog_only.EVENT_FLUSH_STALE + 0.1
    consumer.on_send_event_buffered()
    assert len(consumer.hub.later) == 2


def test_redis_replies_are_parsed_by_hiredis() -> None:
    # redis-py falls back to its pure-Python parser, silently, when hiredis is missing.
    url = "redis://127.0.0.1:6379/0"
    sync = redis.Redis.from_url(url).connection_pool.make_connection()
    kombu = kombu_redis.Channel.connection_class(host="127.0.0.1")  # kombu's pools build these
    asynchronous = redis.asyncio.Redis.from_url(url).connection_pool.make_connection()
    assert isinstance(sync._parser, _HiredisParser)
    assert isinstance(kombu._parser, _HiredisParser)
    assert isinstance(asynchronous._parser, _AsyncHiredisParser)
