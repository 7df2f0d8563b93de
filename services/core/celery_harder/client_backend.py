"""A Redis result backend for processes that send work but never wait on results.

Celery's Redis backend subscribes to a pub/sub channel for every result object a
client creates (a group or chord creates one per member) and keeps each waiter until
someone calls get(). The API and the operator never call get(): they read result keys
directly. Without this class they would hold every dispatched task's waiter and
channel for the life of the process.
"""

from collections.abc import Iterable
from typing import Any

from celery.backends.redis import RedisBackend

CLIENT_BACKEND = f"{__name__}:SendOnlyRedisBackend"


class SendOnlyRedisBackend(RedisBackend):  # type: ignore[misc]
    """RedisBackend that never registers result waiters (no SUBSCRIBE, no leak)."""

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        return result

    def add_pending_results(self, results: Iterable[Any], weak: bool = False) -> list[Any]:
        return list(results)


def client_backend_url(result_backend_url: str) -> str:
    """Celery's `class+url` form that selects SendOnlyRedisBackend for a Redis URL."""
    return f"{CLIENT_BACKEND}+{result_backend_url}"
