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

logger = get_task_logger(__name__)

# One round trip before every task body. A cancelled task must leave no trace of
# having started, so the check and the bookkeeping run together, atomically; the
# STARTED state (Celery's task_track_started) is written here too, in the same round
# trip, instead of by Celery's tracer with a GET and a SET+PUBLISH of its own.
# -1: cancelled; -2: a SUCCESS is already stored for this id (a redelivered copy).
BEFORE_START = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local meta = redis.call('GET', KEYS[4])
if meta then
  local ok, decoded = pcall(cjson.decode, meta)
  if ok and type(decoded) == 'table' and decoded['status'] == 'SUCCESS' then return -2 end
end
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[1])
  redis.call('PUBLISH', KEYS[4], ARGV[3])
end
return n
"""


class TooManyDeliveries(RuntimeError):
    """A task id started more often than allowed: it keeps killing its worker process."""


class CatalogTask(Task):
    """Checks and records a start in Redis before the task body, for three reasons.

    - acks_late with reject_on_worker_lost requeues a task whose process died; a task
      that crashes its process every time would loop forever, so starts are counted.
    - A workflow's status shows when each node started.
    - A cancelled workflow's tasks are marked in Redis, so they never start even on a
      worker that did not hear the revoke broadcast (it restarted, or joined later).
    - A message delivered again after its task succeeded is acknowledged, not run:
      acks_late is at-least-once, and a broker connection loss noticed while Redis
      answers makes kombu put the running tasks' messages back in the queue.
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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = self.request.id
        if task_id and not self.request.called_directly:
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
        return super().__call__(*args, **kwargs)
