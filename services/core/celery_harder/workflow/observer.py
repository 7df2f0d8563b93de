"""What a workflow engine tells its observer: a workflow started, a workflow finished.

The engine stays free of Prometheus: the API and the operator plug in an observer
(`celery_harder.metrics_registry.WorkflowMetrics`) that counts. Each workflow is
counted once across every process that shares its Redis:

* started: by the process whose `WorkflowEngine.submit` dispatched it
  (`Submitted.dispatched_now`); a resumed operator that finds it dispatched does not;
* finished: by the process that first sees it finished, that is the one whose
  HSETNX of the record's `finished_at` wins: the API's deadline reaper, a status
  read (GET /workflows/{id}, its SSE stream, DELETE), or the operator's sync. The
  sum of the finished counters over every API and operator pod is then exact; one
  pod's counter alone is not.
"""

from datetime import datetime
from typing import Protocol

from celery_harder.metric_names import OUTCOMES
from celery_harder.workflow.status import (
    CANCELLED,
    FAILED,
    REASON_TIMEOUT,
    SUCCEEDED,
    WorkflowStatus,
)

SUCCEEDED_OUTCOME, FAILED_OUTCOME, CANCELLED_OUTCOME, TIMED_OUT_OUTCOME = OUTCOMES
_OUTCOME_OF_PHASE = {
    SUCCEEDED: SUCCEEDED_OUTCOME,
    FAILED: FAILED_OUTCOME,
    CANCELLED: CANCELLED_OUTCOME,
}


class WorkflowObserver(Protocol):
    """Told once per workflow that it started, and once that it finished."""

    def on_started(self) -> None:
        """This process dispatched a workflow."""

    def on_finished(self, outcome: str, seconds: float | None) -> None:
        """This process saw a workflow finish first; `seconds` from creation, if known."""


class NullObserver:
    """The default: nobody listens."""

    def on_started(self) -> None:
        return None

    def on_finished(self, outcome: str, seconds: float | None) -> None:
        return None


def outcome_of(status: WorkflowStatus) -> str:
    """The `outcome` label of a finished workflow (ValueError for an unfinished one).

    A deadline that passed is `timed_out`, whatever phase the status shows for it
    (aggregation reports Failed with reason Timeout).
    """
    if status.reason == REASON_TIMEOUT:
        return TIMED_OUT_OUTCOME
    try:
        return _OUTCOME_OF_PHASE[status.phase]
    except KeyError:
        raise ValueError(f"workflow {status.id} is not finished: {status.phase}") from None


def duration_seconds(created_at: str | None, finished_at: str | None) -> float | None:
    """Seconds from creation to finish (ISO 8601 times); None when either is unknown.

    Clocks of different pods may disagree a little: a negative span counts as 0.
    """
    if not created_at or not finished_at:
        return None
    try:
        span = datetime.fromisoformat(finished_at) - datetime.fromisoformat(created_at)
    except ValueError:
        return None
    return max(span.total_seconds(), 0.0)
