"""Dramatiq with its defaults on BENCH_REDIS_URL: `dramatiq bench.peers.dramatiq_app`.

`python -m bench.peers.dramatiq_app N` enqueues N no-op messages, then the sentinel,
whose one SET tells the harness that the queue has drained.
"""

import os
import sys

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BENCH_REDIS_URL"]
QUEUE_KEY = "dramatiq:default"
SENTINEL = "bench:sentinel"

dramatiq.set_broker(RedisBroker(url=URL))


@dramatiq.actor
def noop() -> None:
    """Nothing."""


@dramatiq.actor
def sentinel() -> None:
    redis.Redis.from_url(URL).set(SENTINEL, 1)


def load(count: int) -> None:
    for _ in range(count):
        noop.send()
    sentinel.send()


if __name__ == "__main__":
    load(int(sys.argv[1]))
