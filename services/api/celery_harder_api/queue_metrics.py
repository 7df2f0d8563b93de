"""Queue depth, in-flight messages and overdue workflows, read from Redis at scrape time.

A prometheus-client collector on the API's registry: each GET /metrics reads, in one
pipelined round trip per Redis (one in all when broker and result backend are the
same server), the LLEN of every configured queue's priority sub-lists, the values of
every pool's `unacked` hash and the count of workflow deadlines that passed. It runs
in the scrape's thread on a client with a short timeout and no retries; when Redis
does not answer it serves `celery_harder_redis_up 0` and no queue samples, and
/metrics still answers 200.
"""

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import redis
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry

from celery_harder import keys
from celery_harder import metric_names as mn
from celery_harder.metrics_registry import gauge_samples
from celery_harder.queues import in_flight_by_queue, priority_keys
from celery_harder.settings import Settings
from celery_harder.task_client import REDIS_ERRORS

log = logging.getLogger(__name__)


def overdue_grace(settings: Settings) -> float:
    """Seconds past a deadline before a workflow counts as overdue: a few reaper periods."""
    return max(10.0, 4 * settings.workflow_poll_interval)


def short_client(url: str, timeout: float) -> redis.Redis:
    """A Redis client that gives up after `timeout` seconds and never retries."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass(frozen=True)
class QueueReading:
    """What one scrape read: LLEN per (queue, step), unacked values, overdue count."""

    lengths: dict[tuple[str, int], int]
    unacked: list[bytes]
    overdue: int


def families(reading: QueueReading, queues: Sequence[str], seconds: float) -> list[Family]:
    """The gauge families of one successful reading."""
    waiting = {q: 0 for q in queues}
    for (queue, _), length in reading.lengths.items():
        waiting[queue] += length
    return [
        gauge_samples(mn.REDIS_UP, [((), 1)]),
        gauge_samples(mn.QUEUE_SCRAPE_DURATION, [((), seconds)]),
        gauge_samples(mn.QUEUE_WAITING, [((q,), n) for q, n in waiting.items()]),
        gauge_samples(
            mn.QUEUE_WAITING_BY_PRIORITY,
            [((q, str(step)), n) for (q, step), n in reading.lengths.items()],
        ),
        gauge_samples(
            mn.QUEUE_IN_FLIGHT,
            [((q,), n) for q, n in in_flight_by_queue(reading.unacked, queues).items()],
        ),
        gauge_samples(mn.WORKFLOWS_OVERDUE, [((), reading.overdue)]),
    ]


class QueueCollector(Collector):
    """The queue gauges, read from Redis on every collect()."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        timeout = settings.metrics_redis_timeout
        self.queues = settings.known_queues
        self.unacked_keys = settings.all_unacked_keys
        self.grace = overdue_grace(settings)
        self.clock = clock
        self.broker = short_client(settings.broker_url, timeout)
        same = settings.result_backend_url == settings.broker_url
        self.backend = self.broker if same else short_client(settings.result_backend_url, timeout)

    def read(self) -> QueueReading:
        """Everything in one pipeline per Redis server."""
        steps = [(q, step, key) for q in self.queues for step, key in priority_keys(q)]
        pipe = self.broker.pipeline(transaction=False)
        for _, _, key in steps:
            pipe.llen(key)
        for key in self.unacked_keys:
            pipe.hvals(key)
        overdue_pipe = pipe if self.backend is self.broker else self.backend.pipeline(False)
        overdue_pipe.zcount(keys.WORKFLOW_DEADLINES, "-inf", self.clock() - self.grace)
        replies = pipe.execute()
        if overdue_pipe is not pipe:
            replies += overdue_pipe.execute()
        lengths = {(q, step): int(n) for (q, step, _), n in zip(steps, replies, strict=False)}
        hashes = replies[len(steps) : len(steps) + len(self.unacked_keys)]
        return QueueReading(lengths, [v for values in hashes for v in values], int(replies[-1]))

    def collect(self) -> Iterator[Family]:
        started = time.monotonic()
        try:
            reading = self.read()
        except REDIS_ERRORS as exc:
            log.warning("queue metrics: Redis did not answer: %s", exc)
            yield gauge_samples(mn.REDIS_UP, [((), 0)])
            yield gauge_samples(mn.QUEUE_SCRAPE_DURATION, [((), time.monotonic() - started)])
            return
        yield from families(reading, self.queues, time.monotonic() - started)
