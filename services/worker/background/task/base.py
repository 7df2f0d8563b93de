"""The base class of every catalog task: it bounds how often one task id may start."""

from typing import Any

from celery import Task

from celery_harder.settings import get_settings

DELIVERIES_KEY_PREFIX = "celery-harder:deliveries:"


class TooManyDeliveries(RuntimeError):
    """A task id started more often than allowed: it keeps killing its worker process."""


class CatalogTask(Task):
    """acks_late with reject_on_worker_lost requeues a task whose process died; a task
    that crashes its process every time would loop forever, so deliveries are counted."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if task_id and not self.request.called_directly:
            settings = get_settings()
            key = DELIVERIES_KEY_PREFIX + task_id
            pipe = self.backend.client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, settings.result_expires)
            count = pipe.execute()[0]
            if count > settings.max_deliveries:
                raise TooManyDeliveries(
                    f"task {task_id} started {count} times (limit {settings.max_deliveries})"
                )
        return super().__call__(*args, **kwargs)
