"""Pure functions from a schedule evaluation to the CronTaskWorkflow's `.status`."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from celery_harder_operator import schedule as sch
from celery_harder_operator.cron_resource import active_reference
from celery_harder_operator.status import condition

# status.active lists at most this many runs (Allow can pile up runs that never end);
# status.activeCount stays whole.
ACTIVE_MAX = 100
READY = "Ready"
REASON_SCHEDULED = "Scheduled"
REASON_WAITING = "Waiting"
REASON_SUSPENDED = "Suspended"
REASON_VALIDATION = "ValidationFailed"


def _time(moment: datetime | None) -> str | None:
    return sch.format_time(moment) if moment else None


def _ready(
    previous: Mapping[str, Any], status: str, reason: str, message: str, generation: int, now: str
) -> list[dict[str, Any]]:
    return [
        condition(READY, status, reason, message, generation, previous.get("conditions", []), now)
    ]


def schedule_status(
    previous: Mapping[str, Any],
    *,
    decision: sch.Decision,
    last_schedule: datetime | None,
    next_time: datetime | None,
    runs: Sequence[sch.Run],
    namespace: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """The whole status after one evaluation of a valid schedule."""
    active = sorted((r for r in runs if not r.finished), key=sch.Run.sort_key)
    missed_through = decision.missed_through or sch.parse_time(previous.get("lastMissedTime"))
    if decision.action == "suspended":
        ready = ("False", REASON_SUSPENDED, "spec.suspend is true: no new runs start")
    elif decision.action == "wait":
        ready = ("True", REASON_WAITING, decision.reason)
    else:
        ready = ("True", REASON_SCHEDULED, f"next run at {_time(next_time)}")
    new: dict[str, Any] = {
        "lastScheduleTime": _time(last_schedule),
        "lastSuccessfulTime": _time(
            sch.latest_success(runs, sch.parse_time(previous.get("lastSuccessfulTime")))
        ),
        "lastMissedTime": _time(missed_through),
        "nextScheduleTime": _time(next_time),
        "missedRuns": int(previous.get("missedRuns", 0)) + decision.missed,
        "active": [active_reference(r, namespace) for r in active[-ACTIVE_MAX:]],
        "activeCount": len(active),
        "observedGeneration": generation,
        "conditions": _ready(previous, *ready, generation, sch.format_time(now)),
    }
    # None values stay: as a merge patch they remove a field that no longer applies.
    return new


def invalid_status(
    previous: Mapping[str, Any], message: str, generation: int, now: datetime
) -> dict[str, Any]:
    """Ready False / ValidationFailed: nothing is scheduled until the spec is fixed."""
    return {
        "nextScheduleTime": None,
        "observedGeneration": generation,
        "conditions": _ready(
            previous, "False", REASON_VALIDATION, message, generation, sch.format_time(now)
        ),
    }


def became_invalid(previous: Mapping[str, Any], message: str) -> bool:
    """Whether this validation failure is news (post its Event once, not every tick)."""
    ready = next((c for c in previous.get("conditions", []) if c.get("type") == READY), None)
    return not (
        ready and ready.get("reason") == REASON_VALIDATION and ready.get("message") == message
    )
