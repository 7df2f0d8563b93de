"""Send catalog tasks by name and read their status; used by the API and the operator."""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from celery_harder import keys
from celery_harder.catalog import validate_call
from celery_harder.celery_config import create_celery_app
from celery_harder.results import TaskStatus, describe_meta
from celery_harder.routing import check_queue, task_queue
from celery_harder.settings import Settings

REDIS_ERRORS = (redis.RedisError, OperationalError, OSError)


class BrokerUnavailable(RuntimeError):
    """Redis (broker or result backend) could not be reached in time."""


class TaskClient:
    """A client-side handle on Celery: it never imports worker code."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._broker = redis.Redis.from_url(
            settings.broker_url,
            socket_connect_timeout=settings.redis_timeout,
            socket_timeout=settings.redis_timeout,
        )

    @property
    def results(self) -> redis.Redis:
        """The result backend's Redis client (Celery's own connection pool)."""
        client: redis.Redis = self.app.backend.client
        return client

    def meta_key(self, task_id: str) -> bytes:
        """The result-backend key that holds a task's metadata."""
        key: bytes = self.app.backend.get_key_for_task(task_id)
        return key

    def record_issued(self, task_ids: Sequence[str]) -> None:
        """Remember ids as issued, for as long as their results live, in one round trip."""
        pipe = self.results.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(keys.ISSUED + task_id, 1, ex=self.settings.result_expires)
        pipe.execute()

    def forget_issued(self, task_ids: Sequence[str]) -> None:
        """Drop issued marks of ids whose sending failed."""
        if task_ids:
            self.results.delete(*(keys.ISSUED + t for t in task_ids))

    def submit(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
    ) -> str:
        """Validate against the catalog, record the id, send; BrokerUnavailable on failure.

        The task goes to `queue` (UnknownQueueError unless configured), else its catalog queue.
        """
        spec = validate_call(name, args, kwargs)
        target = check_queue(
            task_queue(spec.queue, {"queue": queue}, self.settings.queue),
            self.settings.known_queues,
        )
        task_id = str(uuid.uuid4())
        try:
            self.record_issued([task_id])
            self.app.send_task(
                name,
                args=list(args),
                kwargs=dict(kwargs or {}),
                task_id=task_id,
                queue=target,
            )
        except REDIS_ERRORS as exc:
            self._forget_quietly([task_id])
            raise BrokerUnavailable(f"could not send {name!r}: {exc}") from exc
        return task_id

    def status(self, task_id: str) -> TaskStatus | None:
        """A task's status, or None for an id this system never issued."""
        try:
            pipe = self.results.pipeline(transaction=False)
            pipe.get(self.meta_key(task_id))
            pipe.exists(keys.ISSUED + task_id)
            raw, issued = pipe.execute()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not read {task_id}: {exc}") from exc
        if raw is None and not issued:
            return None
        meta = self.app.backend.decode(raw) if raw is not None else None
        return describe_meta(task_id, meta)

    def ping(self) -> None:
        """Raise BrokerUnavailable unless the broker and the result backend answer."""
        try:
            self._broker.ping()
            self.results.ping()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(str(exc)) from exc

    def _forget_quietly(self, task_ids: Sequence[str]) -> None:
        try:
            self.forget_issued(task_ids)
        except REDIS_ERRORS:
            pass  # Redis is down; the mark expires with the results anyway.


def create_task_client(settings: Settings) -> TaskClient:
    """A TaskClient over a fresh client-side Celery app."""
    return TaskClient(create_celery_app("celery_harder_client", settings, send_only=True), settings)
