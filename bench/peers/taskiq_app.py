"""taskiq with taskiq-redis's ListQueueBroker on BENCH_REDIS_URL, no result backend.

`taskiq worker bench.peers.taskiq_app:broker`; `python -m bench.peers.taskiq_app N`
enqueues N no-op tasks, then the sentinel, whose one SET tells the harness that the
queue has drained.
"""

import asyncio
import os
import sys

import redis
from taskiq_redis import ListQueueBroker

URL = os.environ["BENCH_REDIS_URL"]
QUEUE_KEY = "taskiq"
SENTINEL = "bench:sentinel"

broker = ListQueueBroker(URL, queue_name=QUEUE_KEY)


@broker.task(task_name="noop")
async def noop() -> None:
    """Nothing."""


@broker.task(task_name="sentinel")
async def sentinel() -> None:
    redis.Redis.from_url(URL).set(SENTINEL, 1)


async def load(count: int) -> None:
    await broker.startup()
    for _ in range(count):
        await noop.kiq()
    await sentinel.kiq()
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(load(int(sys.argv[1])))
