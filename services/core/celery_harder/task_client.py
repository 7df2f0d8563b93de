"""Send catalog tasks by name and read their status; used by the API and the operator."""

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from celery_harder import keys
from celery_harder.catalog import get_task, validate_call
from celery_harder.celery_config import create_celery_app
from celery_harder.publish import Outgoing, TaskMessages, Unsupported
from celery_harder.results import TaskStatus, describe_meta
from celery_harder.routing import check_queue, task_queue
from celery_harder.settings import Settings

REDIS_ERRORS = (redis.RedisError, OperationalError, OSError)
log = logging.getLogger(__name__)


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
        # Issued marks live with the results; when that is the broker's Redis too, the
        # mark and the message go in one MULTI/EXEC.
        self.known_queues = settings.known_queues
        self.shared_redis = settings.result_backend_url == settings.broker_url
        self.messages: TaskMessages | None
        try:
            self.messages = TaskMessages(app, settings.result_expires)
        except Unsupported as exc:
            log.warning("sending through app.send_task (slower): %s", exc)
            self.messages = None

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

    def target_queue(self, name: str, queue: str | None) -> str:
        """The configured queue a call of `name` goes to: `queue`, else its catalog queue."""
        spec = get_task(name)
        return check_queue(
            task_queue(spec.queue, {"queue": queue}, self.settings.queue), self.known_queues
        )

    def prepare(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        task_id: str | None = None,
    ) -> Outgoing | None:
        """Validate against the catalog and build the commands that send it.

        None when this app's configuration needs `app.send_task` (see publish.Unsupported).
        """
        validate_call(name, args, kwargs)
        target = self.target_queue(name, queue)
        if self.messages is None:
            return None
        return self.messages.build(name, args, kwargs, queue=target, task_id=task_id)

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
        outgoing = self.prepare(name, args, kwargs, queue=queue)
        if outgoing is None:
            return self.send_task(name, args, kwargs, queue=self.target_queue(name, queue))
        try:
            self.send(outgoing)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not send {name!r}: {exc}") from exc
        return outgoing.task_id

    def send(self, outgoing: Outgoing) -> None:
        """The issued mark, then the message and its event: one MULTI/EXEC when they share
        a Redis; otherwise the mark first, forgotten again if the message fails."""
        if self.shared_redis:
            pipe = self._broker.pipeline(transaction=True)
            for command in (*outgoing.results, *outgoing.broker):
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            pipe.execute()  # raises the first error a command answered
            return
        self.record_issued([outgoing.task_id])
        try:
            pipe = self._broker.pipeline(transaction=True)
            for command in outgoing.broker:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            pipe.execute()  # raises the first error a command answered
        except REDIS_ERRORS:
            self._forget_quietly([outgoing.task_id])
            raise

    def send_task(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None, *, queue: str
    ) -> str:
        """Send through Celery's producer (configurations TaskMessages does not cover)."""
        task_id = str(uuid.uuid4())
        try:
            self.record_issued([task_id])
            self.app.send_task(
                name,
                args=list(args),
                kwargs=dict(kwargs or {}),
                task_id=task_id,
                queue=queue,
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
