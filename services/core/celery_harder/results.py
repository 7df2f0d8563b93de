"""Turn raw result-backend metadata into the status the API and workflows report."""

from dataclasses import dataclass
from typing import Any

PENDING = "PENDING"
STARTED = "STARTED"
PROGRESS = "PROGRESS"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
RETRY = "RETRY"
REVOKED = "REVOKED"
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
ERROR_STATES = frozenset({FAILURE, RETRY, REVOKED})


@dataclass(frozen=True)
class TaskError:
    """An exception as the worker stored it: its type name and message."""

    type: str
    message: str


@dataclass(frozen=True)
class TaskStatus:
    """What is known of one task: Celery's state name, result, progress and error."""

    task_id: str
    state: str
    result: Any = None
    progress: dict[str, Any] | None = None
    error: TaskError | None = None
    date_done: str | None = None


def error_from_result(result: Any) -> TaskError:
    """The error in a failed task's stored result (Celery's json exception shape)."""
    if isinstance(result, dict) and "exc_type" in result:
        message = result.get("exc_message", "")
        if isinstance(message, list | tuple):
            message = " ".join(str(m) for m in message)
        return TaskError(type=str(result["exc_type"]), message=str(message))
    return TaskError(type="Error", message=str(result))


def describe_meta(task_id: str, meta: dict[str, Any] | None) -> TaskStatus:
    """Status from decoded backend metadata; no metadata means PENDING."""
    if not meta:
        return TaskStatus(task_id=task_id, state=PENDING)
    state = str(meta.get("status", PENDING))
    result = meta.get("result")
    date_done = meta.get("date_done")
    if state == PROGRESS:
        progress = result if isinstance(result, dict) else {"value": result}
        return TaskStatus(task_id, state, progress=progress, date_done=date_done)
    if state in ERROR_STATES:
        return TaskStatus(task_id, state, error=error_from_result(result), date_done=date_done)
    if state == SUCCESS:
        return TaskStatus(task_id, state, result=result, date_done=date_done)
    # STARTED and custom states: the stored meta (pid, hostname) is not a result.
    return TaskStatus(task_id, state, date_done=date_done)
