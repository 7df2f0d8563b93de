"""A Redis result backend for processes that send work but never wait on results.

Celery's Redis backend subscribes to a pub/sub channel for every task a client sends
(on_task_call) and for every result object it creates (a group or chord creates one
per member), keeps each waiter until someone calls get(), and unsubscribes when the
result object is dropped. The API and the operator never call get(): they read result
keys directly. Without this class they would pay a SUBSCRIBE and an UNSUBSCRIBE per
canvas sent, and hold every waiter and channel nobody drops.
"""

from collections.abc import Iterable
from typing import Any

from celery.backends.redis import RedisBackend

CLIENT_BACKEND = f"{__name__}:SendOnlyRedisBackend"


class SendOnlyRedisBackend(RedisBackend):  # type: ignore[misc]
    """RedisBackend that never registers result waiters (no SUBSCRIBE, no leak)."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None  # nobody here waits on the result's channel

    def remove_pending_result(self, result: Any) -> Any:
        return result  # nothing was added, so nothing to remove or unsubscribe

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        return result

    def add_pending_results(self, results: Iterable[Any], weak: bool = False) -> list[Any]:
        return list(results)


def client_backend_url(result_backend_url: str) -> str:
    """Celery's `class+url` form that selects SendOnlyRedisBackend for a Redis URL."""
    return f"{CLIENT_BACKEND}+{result_backend_url}"
