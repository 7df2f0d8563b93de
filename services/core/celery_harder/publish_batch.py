"""A canvas's messages in kombu publish batches: pipelined round trips, not one each."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery import Celery
from kombu import Producer

# Commands per flush: a task is two (its message, its task-sent event). kombu's default
# of 1,000 held a big canvas's first tasks back until 500 were built, workers idle.
BATCH_COMMANDS = 100
# The producer whose batch this thread's sends join; None outside `batched_sends`.
_BATCHING: ContextVar[Producer | None] = ContextVar("celery_harder_batching", default=None)


def install(app: Celery) -> None:
    """Make `app`'s sends join the current thread's batch, wherever Celery acquires a producer.

    A chord's apply_async keeps the producer it is given from its header, which then
    acquires one of its own: the header's thousand messages went out one round trip
    each. Celery acquires every producer through `producer_or_acquire`, so the batch
    is found there. Other threads (the operator dispatches in several) are unaffected.
    """
    acquire = app.producer_or_acquire

    def producer_or_acquire(producer: Producer | None = None) -> Any:
        return acquire(producer or _BATCHING.get())

    app.producer_or_acquire = producer_or_acquire


@contextmanager
def batched_sends(app: Celery) -> Iterator[Producer]:
    """Every task message and task-sent event `app` sends in this block, in kombu's batch.

    kombu flushes the batch every BATCH_COMMANDS commands and when the block ends; a block
    that raises discards what was not flushed yet.
    """
    with app.producer_or_acquire() as producer, producer.batch(max_size=BATCH_COMMANDS):
        token = _BATCHING.set(producer)
        try:
            yield producer
        finally:
            _BATCHING.reset(token)
