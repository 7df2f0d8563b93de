"""Run blocking Redis and Celery calls off the event loop, with a deadline."""

from collections.abc import Callable
from typing import TypeVar

import anyio

from celery_harder.task_client import BrokerUnavailable

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: object, timeout: float) -> T:
    """Call `fn` in a worker thread; BrokerUnavailable if it takes longer than `timeout`."""
    try:
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=True)
    except TimeoutError as exc:
        raise BrokerUnavailable(f"Redis did not answer within {timeout:.1f}s") from exc
