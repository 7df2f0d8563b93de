"""Only catalog tasks run: the worker's consumer refuses every other task name."""

from typing import Any

from celery.worker.consumer import Consumer

from celery_harder.catalog import CATALOG


class CatalogOnlyConsumer(Consumer):
    """Celery's consumer, with execution strategies for catalog names alone.

    Every Celery app registers built-in tasks (celery.accumulate, celery.map,
    celery.chord_unlock, ...), and a message naming one runs it, with whatever
    arguments whoever wrote to Redis chose. Canvas work on the Redis backend never
    sends them as messages: chords join natively and chains travel inside the
    messages of catalog tasks. With no strategy, the consumer handles the name as
    unregistered: it logs it, rejects the message and stores NotRegistered.
    """

    def update_strategies(self) -> None:
        """Build the strategies as Celery does, then keep the catalog's only."""
        super().update_strategies()
        strategies: dict[str, Any] = self.strategies
        for name in [n for n in strategies if n not in CATALOG]:
            del strategies[name]
