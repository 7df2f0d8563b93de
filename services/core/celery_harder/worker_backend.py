"""The worker's Redis result backend: every state write in one atomic round trip.

Celery's key-value backends read a task's stored meta before writing a new state
(`_store_result`), so that a late copy of a task never overwrites a stored SUCCESS;
on Redis that is a GET and then a SET+PUBLISH, two round trips per state, and the
guard is not atomic (a SUCCESS written between the two is overwritten). This backend
runs the same guard and the same writes (SET with the expiry Celery would give, then
PUBLISH on the key's channel, which result waiters and the operator listen on) as one
Lua script.
"""

from functools import cached_property
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

WORKER_BACKEND = f"{__name__}:WorkerRedisBackend"

# Lua: returns from the script when KEYS[n] holds a meta whose status is SUCCESS
# (Celery's results are JSON here: accept_content is JSON only).
RETURN_IF_SUCCEEDED = """
local stored = redis.call('GET', KEYS[{n}])
if stored then
  local ok, decoded = pcall(cjson.decode, stored)
  if ok and type(decoded) == 'table' and decoded['status'] == 'SUCCESS' then return {value} end
end
"""

# KEYS[1] the meta key; ARGV[1] the encoded meta, ARGV[2] its expiry in seconds (0: none).
# 0: a SUCCESS was already stored, nothing written; 1: written and published.
STORE_UNLESS_SUCCEEDED = (
    RETURN_IF_SUCCEEDED.format(n=1, value=0)
    + """
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""
)


class WorkerRedisBackend(RedisBackend):  # type: ignore[misc]
    """RedisBackend whose state writes take one round trip and cannot overwrite a SUCCESS."""

    @cached_property
    def _store_script(self) -> Any:
        return self.client.register_script(STORE_UNLESS_SUCCEEDED)

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        # No retry here, as in Celery's own read: store_result retries this whole method
        # (result_backend_always_retry), so a meta stored after an outage is dated then.
        self._store_script(
            keys=[self.get_key_for_task(task_id)], args=[value, expires or 0], client=self.client
        )
        return result


def worker_backend_url(result_backend_url: str) -> str:
    """Celery's `class+url` form that selects WorkerRedisBackend for a Redis URL."""
    return f"{WORKER_BACKEND}+{result_backend_url}"
