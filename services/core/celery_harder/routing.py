"""Queue names and routing: which queue a task is sent to, and which names are allowed."""

import re
from collections.abc import Collection, Mapping
from typing import Any

# Letters, digits and `_.:-`: no separator of CELERY_HARDER_QUEUES, no control character
# that kombu's priority suffix (`\x06\x16<step>`) could collide with. The chart's
# values.schema.json holds the same pattern for every queue it renders.
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)


class UnknownQueueError(ValueError):
    """A queue name that is not among the configured queues."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        super().__init__(f"unknown queue {name!r}; configured queues: {', '.join(known)}")
        self.name = name


def check_queue_name(name: str) -> str:
    """`name` if it is a well-formed queue name, else ValueError."""
    if not _QUEUE_NAME.match(name):
        raise ValueError(f"queue name {name!r} must match {QUEUE_NAME_PATTERN}")
    return name


def split_queue_list(raw: str) -> tuple[str, ...]:
    """`"celery, cpu io"` -> `("celery", "cpu", "io")`, order kept, duplicates dropped."""
    return tuple(dict.fromkeys(q for q in re.split(r"[,\s]+", raw) if q))


def check_queue(name: str, known: Collection[str]) -> str:
    """`name` if it is configured, else UnknownQueueError."""
    if name not in known:
        raise UnknownQueueError(name, known)
    return name


def task_queue(catalog_queue: str | None, options: Mapping[str, Any], default_queue: str) -> str:
    """The queue one call goes to: its own `queue` option, the task's catalog queue, the default."""
    chosen = options.get("queue")
    return str(chosen) if chosen else catalog_queue or default_queue
