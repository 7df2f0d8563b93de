"""Poll a check until it holds, with a deadline; imports nothing of the project's.

Every module of celery_harder_dev may wait on something, the cluster code included,
so this one stands below them all (local_processes imports the cluster's layout).
"""

import time
from collections.abc import Callable


class ProcessExited(RuntimeError):
    """A process that was being waited for exited instead of becoming ready."""


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check` until it is true, or raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception:  # noqa: BLE001  (not ready yet is any failure of the probe)
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(interval)
