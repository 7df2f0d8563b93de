"""The worker's consumer: only catalog tasks run, and task events leave in batches."""

from typing import Any

from celery.worker.consumer import Consumer
from kombu.common import ignore_errors

from background.deferred_flush import DeferredFlush
from celery_harder.catalog import CATALOG

# Task events wait at most this long in the dispatcher's buffer before one publish
# sends them all (Celery's own buffer also flushes at 24 events, `buffer_limit`).
EVENT_FLUSH_DELAY = 0.02
# A flush scheduled longer ago than this is presumed dropped (the consumer's timer was
# cleared by a restart): the next event schedules another.
EVENT_FLUSH_STALE = 1.0


class CatalogOnlyConsumer(Consumer):
    """Celery's consumer, with execution strategies for catalog names alone.

    Every Celery app registers built-in tasks (celery.accumulate, celery.map,
    celery.chord_unlock, ...), and a message naming one runs it, with whatever
    arguments whoever wrote to Redis chose. Canvas work on the Redis backend never
    sends them as messages: chords join natively and chains travel inside the
    messages of catalog tasks. With no strategy, the consumer handles the name as
    unregistered: it logs it, rejects the message and stores NotRegistered.

    Task events (received, started, succeeded... for Flower and celery-exporter) are
    buffered by Celery and published as one `task.multi` message per flush; Celery
    flushes on the next turn of the event loop, which with prefetch off is about one
    publish per event: the largest single cost of the main process while draining a
    queue (py-spy, bench B2). Here a flush is scheduled EVENT_FLUSH_DELAY after the
    first buffered event, so one publish carries the events of every task of that
    interval. Events arrive up to 20 ms later; none is dropped by the batching, and the
    buffer is flushed before the consumer shuts down.
    """

    _event_flush: DeferredFlush | None = None

    def update_strategies(self) -> None:
        """Build the strategies as Celery does, then keep the catalog's only."""
        super().update_strategies()
        strategies: dict[str, Any] = self.strategies
        for name in [n for n in strategies if n not in CATALOG]:
            del strategies[name]

    def on_send_event_buffered(self) -> None:
        """Schedule one flush for the events of the next EVENT_FLUSH_DELAY seconds."""
        if not self.hub:
            super().on_send_event_buffered()
            return
        if self._event_flush is None:
            self._event_flush = DeferredFlush(EVENT_FLUSH_DELAY, EVENT_FLUSH_STALE)
        self._event_flush.request(self.hub, self._flush_events)

    def shutdown(self) -> None:
        """Publish the buffered events before the dispatcher closes."""
        ignore_errors(self, self._flush_events)  # the broker may be gone: shut down anyway
        super().shutdown()
