"""Poll a check until it holds, with a deadline; imports nothing of the project's.

Every module of celery_harder_dev may wait on something, the cluster code included,
so this one stands below them all (local_processes imports the cluster's layout). The
tests' poll (tests/support/polling.py) is this one too.
"""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ProcessExited(RuntimeError):
    """A process that was being waited for exited instead of becoming ready."""


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Poll `check` until it returns a truthy value, and return that value; TimeoutError
    naming `what` (and the last error `check` raised) after `timeout` seconds.

    An error in `retry_on` means not ready yet; any other error, and ProcessExited
    always, ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
        except ProcessExited:
            raise
        except retry_on as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s{detail}")
        time.sleep(interval)
