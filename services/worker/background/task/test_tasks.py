"""The seed's teaching tasks, all `bind=True`, registered under catalog names."""

import os
import time
from typing import Any

from celery import Task

from background.celery import celery_app
from background.task.base import CatalogTask
from celery_harder import catalog

Number = float | int
PROGRESS_INTERVAL = 0.5  # seconds; the contract is at least one report a second


class DeliberateFailure(Exception):
    """Raised by `fail`, so callers can see a failure's type and message travel."""


@celery_app.task(bind=True, base=CatalogTask, name=catalog.ADD.name)
def add(self: Task, x: Number, y: Number) -> Number:
    """x + y."""
    return x + y


@celery_app.task(bind=True, base=CatalogTask, name=catalog.MUL.name)
def mul(self: Task, x: Number, y: Number) -> Number:
    """x * y."""
    return x * y


@celery_app.task(bind=True, base=CatalogTask, name=catalog.XSUM.name)
def xsum(self: Task, numbers: list[Number]) -> Number:
    """Sum of a list of numbers (a chord body receives its header's results here)."""
    return sum(numbers)


@celery_app.task(bind=True, base=CatalogTask, name=catalog.REQUEST_INFO.name)
def request_info(self: Task, data: Any) -> dict[str, Any]:
    """What `self.request` shows inside a running task (the seed's lesson)."""
    return {
        "task_id": self.request.id,
        "task_name": self.request.task,
        "retries": self.request.retries,
        "args": self.request.args,
        "kwargs": self.request.kwargs,
        "group": self.request.group,
        "root_id": self.request.root_id,
        "parent_id": self.request.parent_id,
        # Which worker ran it, and from which queue: what routing to pools is checked by.
        "hostname": self.request.hostname,
        "queue": (self.request.delivery_info or {}).get("routing_key"),
    }


@celery_app.task(bind=True, base=CatalogTask, name=catalog.SLEEP.name)
def sleep(self: Task, seconds: float) -> dict[str, Any]:
    """Sleep for `seconds`, storing PROGRESS meta at least once a second."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        self.update_state(
            state="PROGRESS",
            meta={
                "current": round(elapsed, 3),
                "total": seconds,
                "percent": round(100 * elapsed / seconds, 1) if seconds else 100.0,
                # The pool process id lets tests (and operators) find who runs the task.
                "pid": os.getpid(),
            },
        )
        time.sleep(min(PROGRESS_INTERVAL, seconds - elapsed))
    return {"slept": seconds}


@celery_app.task(bind=True, base=CatalogTask, name=catalog.FAIL.name)
def fail(self: Task, message: str = "failed on purpose") -> None:
    """Raise DeliberateFailure(message)."""
    raise DeliberateFailure(message)
