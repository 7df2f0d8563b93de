"""The base class of every catalog task: bounded redelivery, start time, durable cancel."""

from datetime import UTC, datetime
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger

from celery_harder import keys
from celery_harder.settings import get_settings

logger = get_task_logger(__name__)

# One round trip before every task body. A cancelled task must leave no trace of
# having started, so the check and the bookkeeping run together, atomically.
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
                args=[settings.result_expires, datetime.now(UTC).isoformat()],
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
