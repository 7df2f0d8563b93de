"""The base class of every catalog task: bounded redelivery, start time, durable cancel."""

import os
from datetime import UTC, datetime
from typing import Any

from celery import Task, states
from celery.app.task import get_actual_ignore_result
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger

from celery_harder import keys
from celery_harder.settings import get_settings
from celery_harder.worker_backend import RETURN_IF_SUCCEEDED
from celery_harder.workflow.compiler import may_be_leaf_task_id

logger = get_task_logger(__name__)

# One round trip before a task body. A cancelled task must leave no trace of having
# started, so the check and the bookkeeping run together, atomically; the STARTED
# state (Celery's task_track_started) is written here too, in the same round trip,
# instead of by Celery's tracer with a GET and a SET+PUBLISH of its own.
# -1: cancelled; -2: a SUCCESS is already stored for this id (a redelivered copy).
# ARGV[4] '1': this task's first delivery skipped the script (an untracked task, see
# CatalogTask.untracked), so a count that does not exist yet starts from that one.
BEFORE_START = (
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
"""
    + RETURN_IF_SUCCEEDED.format(n=4, value=-2)
    + """
local n
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  n = redis.call('INCRBY', KEYS[2], 2)
else
  n = redis.call('INCR', KEYS[2])
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[1])
  redis.call('PUBLISH', KEYS[4], ARGV[3])
end
return n
"""
)


class TooManyDeliveries(RuntimeError):
    """A task id started more often than allowed: it keeps killing its worker process."""


class CatalogTask(Task):
    """Checks and records a start in Redis before the task body, for four reasons.

    - acks_late with reject_on_worker_lost requeues a task whose process died; a task
      that crashes its process every time would loop forever, so starts are counted.
    - A workflow's status shows when each node started.
    - A cancelled workflow's tasks are marked in Redis, so they never start even on a
      worker that did not hear the revoke broadcast (it restarted, or joined later).
    - A message delivered again after its task succeeded is acknowledged, not run:
      acks_late is at-least-once, and a broker connection loss noticed while Redis
      answers makes kombu put the running tasks' messages back in the queue.

    An untracked task's first delivery needs none of it and skips the round trip.
    """

    _before_start: Any = None
    # Celery's tracer would store STARTED with two round trips of its own before
    # __call__; BEFORE_START stores the same meta in its one (see started_meta).
    track_started = False

    def started_meta(self, task_id: str) -> str:
        """The STARTED meta Celery's tracer would store, encoded as its backend encodes
        it; empty (nothing stored) where the tracer would store none."""
        if not self.app.conf.task_track_started or get_actual_ignore_result(self, self.request):
            return ""
        backend = self.backend
        meta = backend._get_result_meta(
            result={"pid": os.getpid(), "hostname": self.request.hostname},
            state=states.STARTED,
            traceback=None,
            request=self.request,
        )
        meta["task_id"] = task_id
        return str(backend.encode(meta))

    def untracked(self, task_id: str) -> bool:
        """A task that stores no result and is no workflow's leaf: nothing shows its
        start, no cancel mark can name it, and no SUCCESS of it is stored."""
        return bool(get_actual_ignore_result(self, self.request)) and not may_be_leaf_task_id(
            task_id
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if task_id and not self.request.called_directly:
            self.record_start(task_id)
        return super().__call__(*args, **kwargs)

    def record_start(self, task_id: str) -> None:
        """Count, check and record this start (BEFORE_START); Ignore or raise to stop it."""
        untracked = self.untracked(task_id)
        # kombu marks every message it puts back in a queue as redelivered, so only an
        # untracked task's first delivery skips the count; its copies are counted.
        if untracked and not (self.request.delivery_info or {}).get("redelivered"):
            return
        settings = get_settings()
        if CatalogTask._before_start is None:
            CatalogTask._before_start = self.backend.client.register_script(BEFORE_START)
        count = CatalogTask._before_start(
            keys=[
                keys.REVOKED + task_id,
                keys.DELIVERIES + task_id,
                keys.STARTED + task_id,
                self.backend.get_key_for_task(task_id),
            ],
            args=[
                settings.result_expires,
                datetime.now(UTC).isoformat(),
                self.started_meta(task_id),
                "1" if untracked else "",
            ],
            client=self.backend.client,
        )
        if count == -1:
            self.backend.mark_as_revoked(task_id, reason="workflow cancelled")
            raise Ignore()
        if count == -2:
            # Ignore leaves the stored SUCCESS as it is and acknowledges the message.
            logger.warning("task %s already succeeded: redelivered copy not run", task_id)
            raise Ignore()
        if count > settings.max_deliveries:
            raise TooManyDeliveries(
                f"task {task_id} started {count} times (limit {settings.max_deliveries})"
            )
