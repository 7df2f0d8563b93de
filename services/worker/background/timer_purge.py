"""Cancelled timers leave the worker's event loop when they are cancelled, not when due.

With a time limit, the prefork pool schedules two timers per task in the main
process's event loop (soft and hard limit, `AsynPool._on_timeout_set`) and cancels
them when the task ends. kombu's Timer only marks a cancelled entry; the entry stays
in its heap until its due time passes, so each finished task holds about 540 bytes
for `task_time_limit` seconds (300 by default): some 160 MiB at 1,000 tasks/s, and the
main process's RSS grew 10 MiB per 20,000 tasks drained (bench B2/B7; tracemalloc
traced it to asynpool's `call_later`; celery/celery#5200 reports the same). A timer in
the same loop drops the cancelled entries every PURGE_INTERVAL seconds.
"""

import heapq
from typing import Any

from celery import bootsteps

# The longest a cancelled entry stays: at 1,000 tasks/s, about 5 MiB of them.
PURGE_INTERVAL = 5.0


def purge_cancelled(queue: list[Any]) -> int:
    """Drop the cancelled entries of a kombu Timer's heap, in place; how many went."""
    kept = [item for item in queue if not item.entry.canceled]
    dropped = len(queue) - len(kept)
    if dropped:
        # In place: the timer's scheduler iterates this very list object.
        queue[:] = kept
        heapq.heapify(queue)
    return dropped


class TimerPurgeStep(bootsteps.StartStopStep):
    """Consumer step: purges the event loop's cancelled timers while it consumes."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        hub = parent.hub
        if hub is None:  # the solo and thread pools: no event loop, no pool timers
            return
        # kombu's Timer has no public purge: its heap is `_queue` (kombu 5.x).
        self.tref = hub.timer.call_repeatedly(PURGE_INTERVAL, purge_cancelled, (hub.timer._queue,))

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop
