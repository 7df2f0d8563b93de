"""Redis keys of a Celery queue: the list itself and its priority sub-lists.

The one definition is in core (`celery_harder.queues`), where the API's queue
metrics read it; this name stays for the tests, bench and chaos that import it here.
"""

from celery_harder.queues import PRIORITY_SEPARATOR, queue_keys

__all__ = ["PRIORITY_SEPARATOR", "queue_keys"]
