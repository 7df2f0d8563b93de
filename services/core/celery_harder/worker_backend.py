"""The worker's Redis result backend: every state write in one atomic round trip.

Celery's key-value backends read a task's stored meta before writing a new state
(`_store_result`), so that a late copy of a task never overwrites a stored SUCCESS;
on Redis that is a GET and then a SET+PUBLISH, two round trips per state, and the
guard is not atomic (a SUCCESS written between the two is overwritten). This backend
runs the same guard and the same writes (SET with the expiry Celery would give, then
PUBLISH on the key's channel, which result waiters and the operator listen on) as one
Lua script.

A chord header task's SUCCESS and its count towards the chord (Celery's own chord
script) go in one pipelined round trip, in that order, instead of two.
"""

import threading
from functools import cached_property, partial
from typing import Any

from celery import states
from celery.backends.base import _is_request_ignore_result
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str
from redis.exceptions import NoScriptError

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


class HeldWrite(threading.local):
    """The state write a chord header task holds for its chord count. Celery gives each
    thread a backend of its own; this holds per thread even for one shared backend."""

    holding = False
    write: tuple[list[Any], list[Any]] | None = None


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
        write = ([self.get_key_for_task(task_id)], [value, expires or 0])
        if self._held.holding:
            self._held.write = write  # sent with the chord count (mark_as_done)
            return result
        # No retry here, as in Celery's own read: store_result retries this whole method
        # (result_backend_always_retry), so a meta stored after an outage is dated then.
        self._store_script(keys=write[0], args=write[1], client=self.client)
        return result

    @cached_property
    def _held(self) -> "HeldWrite":
        return HeldWrite()

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> None:
        """Celery's, with a chord header task's SUCCESS sent in its chord count's round trip."""
        if not (store_result and request and request.chord) or _is_request_ignore_result(request):
            super().mark_as_done(task_id, result, request, store_result, state)
            return
        held = self._held
        held.holding, held.write = True, None
        try:
            self.store_result(task_id, result, state, request=request)
        finally:
            held.holding = False
        try:
            self.on_chord_part_return(request, state, result)
        finally:
            self._send_held()

    def _send_held(self) -> None:
        """Send alone, retried as store_result retries, a held write the chord count did not
        carry (Celery returned before counting, or the pipeline failed)."""
        write, self._held.write = self._held.write, None
        if write is None:
            return
        keys, args = write
        self._ensure_retryable(
            partial(self._store_script, keys=keys, args=args, client=self.client),
            fallback_exc=BackendStoreError,
            fallback_msg="failed to store result on the backend",
        )

    @property
    def _chord_part_return_script(self) -> Any:
        """Celery's chord script; while a write is held, the script sent together with it."""
        script = self._chord_script
        held = self._held.write
        if held is None:
            return script
        return partial(self._count_with_held_write, script, held)

    @cached_property
    def _chord_script(self) -> Any:
        return super()._chord_part_return_script

    def _count_with_held_write(
        self,
        script: Any,
        held: tuple[list[Any], list[Any]],
        keys: list[Any],
        args: list[Any],
        client: Any,
    ) -> Any:
        """The held state write, then Celery's chord script, in one round trip.

        EVALSHA without redis-py's pipeline script loading, which costs a SCRIPT EXISTS
        round trip per pipeline: a script Redis lost (a restart, SCRIPT FLUSH) answers
        NOSCRIPT and is run again on its own, which loads it; nothing runs twice.
        """
        store_keys, store_args = held
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(self._store_script.sha, len(store_keys), *store_keys, *store_args)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        stored, counted = pipe.execute(raise_on_error=False)
        if not isinstance(stored, BaseException):
            self._held.write = None  # written; otherwise _send_held sends it
        if isinstance(counted, NoScriptError):
            return script(keys=keys, args=args, client=client)
        if isinstance(counted, BaseException):
            raise counted
        return counted


def worker_backend_url(result_backend_url: str) -> str:
    """Celery's `class+url` form that selects WorkerRedisBackend for a Redis URL."""
    return f"{WORKER_BACKEND}+{result_backend_url}"
