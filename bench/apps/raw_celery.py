"""Raw Celery, defaults only: the baseline of B2, B3 and B7 (`celery -A bench.apps.raw_celery`).

One Celery() on the same Redis (BENCH_REDIS_URL, broker and result backend), none of
celery-harder's settings: early acks, prefetch multiplier 4, no started state.
"""

import os
import time

from celery import Celery

app = Celery(
    "raw_celery", broker=os.environ["BENCH_REDIS_URL"], backend=os.environ["BENCH_REDIS_URL"]
)


@app.task(name="raw.started_at")
def started_at() -> float:
    """The task's own start time (time.time()), as its result."""
    return time.time()


@app.task(name="raw.noop")
def noop() -> None:
    """Nothing; its result (None) is stored."""


@app.task(name="raw.noop_no_result", ignore_result=True)
def noop_no_result() -> None:
    """Nothing, and no result stored."""


@app.task(name="raw.add")
def add(x: float, y: float) -> float:
    return x + y


@app.task(name="raw.xsum")
def xsum(numbers: list[float]) -> float:
    return sum(numbers)
