"""One deferred flush at a time on the worker's event loop, for work sent in batches."""

import time
from collections.abc import Callable
from typing import Any


class DeferredFlush:
    """Runs a flush `delay` seconds after the first request, once for every request since.

    A flush requested longer ago than `stale` and not yet run is presumed dropped (a
    consumer restart can clear the event loop's timers), so the next request schedules
    another instead of waiting for it forever.
    """

    def __init__(self, delay: float, stale: float) -> None:
        self.delay = delay
        self.stale = stale
        self._requested_at: float | None = None

    def request(self, hub: Any, flush: Callable[..., None], *args: Any) -> None:
        """Schedule `flush(*args)` on `hub` unless a flush is already due."""
        now = time.monotonic()
        if self._requested_at is not None and now - self._requested_at < self.stale:
            return
        self._requested_at = now
        hub.call_later(self.delay, self._run, flush, *args)

    def _run(self, flush: Callable[..., None], *args: Any) -> None:
        self._requested_at = None
        flush(*args)
