"""Pure scheduling logic of a CronTaskWorkflow: cron times, run names, what to start or stop.

Nothing here talks to Kubernetes or reads a clock: every function takes `now`, so the
same decisions are unit-tested (T0) and taken by the operator's timer.
The semantics are Kubernetes CronJob's (docs/schedules.md spells them out).
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

ALLOW = "Allow"
FORBID = "Forbid"
REPLACE = "Replace"
CONCURRENCY_POLICIES = (ALLOW, FORBID, REPLACE)
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_CONCURRENCY_POLICY = ALLOW
DEFAULT_SUCCESSFUL_RUNS_HISTORY_LIMIT = 3
DEFAULT_FAILED_RUNS_HISTORY_LIMIT = 1
# One evaluation enumerates at most this many scheduled times: an every-minute schedule
# suspended for a year would otherwise cost half a million iterations in one tick.
MAX_COUNTED = 1000
SUCCEEDED = "Succeeded"
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled"})
# CronJob's (robfig/cron's) descriptors; `@every` is not a cron schedule and is refused.
DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
# One list item of a field: *, ?, a number or a three-letter name, an optional range end,
# an optional step. croniter also knows H (hashed), R (random), L and #; a schedule that
# means another time on every restart (R) or that CronJob would refuse is refused here.
_ITEM = re.compile(r"(\*|\?|[0-9]+|[A-Za-z]{3})(-([0-9]+|[A-Za-z]{3}))?(/[0-9]+)?")


class ScheduleError(ValueError):
    """A schedule or time zone that cannot be used; the message says why."""


@dataclass(frozen=True)
class Schedule:
    """A validated cron expression in a time zone; every time it returns is in UTC."""

    expression: str
    zone: ZoneInfo

    def _times(self, start: datetime) -> croniter:
        return croniter(self.expression, start.astimezone(self.zone))

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled time strictly after `moment`."""
        return as_utc(self._times(moment).get_next(datetime))

    def previous_before(self, moment: datetime) -> datetime:
        """The last scheduled time strictly before `moment`."""
        return as_utc(self._times(moment).get_prev(datetime))


def as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """A time as Kubernetes writes them: UTC, whole seconds, trailing Z."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """A Kubernetes timestamp (or any ISO 8601 time) as an aware UTC datetime."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return as_utc(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def parse_time_zone(name: str | None) -> ZoneInfo:
    """An IANA time zone (default UTC); ScheduleError for a name zoneinfo does not know."""
    name = name or DEFAULT_TIME_ZONE
    # zoneinfo would also open a relative path; an IANA name never starts with / or has ..
    if name.startswith("/") or ".." in name.split("/"):
        raise ScheduleError(f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin"
        ) from exc


def check_fields(expression: str) -> None:
    """The CronJob grammar: five fields or a descriptor; ScheduleError otherwise."""
    if expression.startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError("a time zone inside the schedule is not supported: set spec.timeZone")
    if expression.startswith("@"):
        if expression not in DESCRIPTORS:
            raise ScheduleError(
                f"unknown descriptor {expression!r}; known: {', '.join(sorted(DESCRIPTORS))}"
            )
        return
    fields = expression.split()
    if len(fields) != len(FIELDS):
        raise ScheduleError(
            f"a schedule has {len(FIELDS)} fields ({', '.join(FIELDS)}), "
            f"{expression!r} has {len(fields)}"
        )
    for name, text in zip(FIELDS, fields, strict=True):
        for item in text.split(","):
            if not _ITEM.fullmatch(item):
                raise ScheduleError(f"{name} field {text!r}: {item!r} is not a cron value")


def parse_schedule(expression: str, time_zone: str | None, now: datetime) -> Schedule:
    """A usable schedule, or ScheduleError naming what is wrong (never a crash loop)."""
    expression = " ".join(expression.split())
    check_fields(expression)
    zone = parse_time_zone(time_zone)
    if not croniter.is_valid(expression):
        raise ScheduleError(f"invalid schedule {expression!r}: a value is out of range")
    schedule = Schedule(expression, zone)
    try:
        schedule.next_after(now)
    except (CroniterBadDateError, CroniterBadCronError, CroniterError) as exc:
        # e.g. "0 0 30 2 *": well formed, but February never has a 30th.
        raise ScheduleError(f"schedule {expression!r} never matches a date") from exc
    return schedule


def run_name(owner: str, scheduled: datetime) -> str:
    """The run's name: CronJob's `<name>-<minutes since the epoch>`, one name per time."""
    return f"{owner}-{int(scheduled.timestamp()) // 60}"


@dataclass(frozen=True)
class Run:
    """One TaskWorkflow a CronTaskWorkflow started, as the operator's index sees it."""

    name: str
    uid: str
    scheduled: datetime | None
    phase: str | None = None
    finished_at: datetime | None = None
    stopping: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in FINAL_PHASES

    def sort_key(self) -> tuple[datetime, str]:
        return (self.scheduled or datetime.min.replace(tzinfo=UTC), self.name)


@dataclass(frozen=True)
class Due:
    """The scheduled times in (cursor, now]: the latest one and how many came before it."""

    latest: datetime | None
    earlier: int = 0
    earlier_through: datetime | None = None


def next_time(schedule: Schedule, cursor: datetime, now: datetime) -> datetime:
    """The next time a run can start: after now and after the cursor, since every time
    up to the cursor is evaluated (a clock behind the API server's, which stamped the
    creation, would otherwise show a time that never runs)."""
    return schedule.next_after(max(cursor, now))


def due_times(schedule: Schedule, cursor: datetime, now: datetime) -> Due:
    """Which scheduled times have passed since the cursor, bounded by MAX_COUNTED."""
    found: list[datetime] = []
    moment = cursor
    while len(found) <= MAX_COUNTED:
        moment = schedule.next_after(moment)
        if moment > now:
            break
        found.append(moment)
    if not found:
        return Due(None)
    if len(found) <= MAX_COUNTED:
        latest, earlier = found[-1], len(found) - 1
    else:
        # More than the bound: jump straight to the latest time; count only the bound.
        latest = schedule.previous_before(now + timedelta(microseconds=1))
        earlier = MAX_COUNTED
    through = schedule.previous_before(latest) if earlier else None
    return Due(latest, earlier, through)


Action = Literal["none", "start", "adopt", "wait", "miss", "suspended"]


@dataclass(frozen=True)
class Decision:
    """What one evaluation does; the handler carries it out, nothing else decides."""

    action: Action
    scheduled: datetime | None = None
    missed: int = 0
    missed_through: datetime | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    reason: str = ""


def evaluated_through(
    last_schedule: datetime | None, last_missed: datetime | None, created: datetime
) -> datetime:
    """The cursor: every scheduled time up to it has a run or was counted as missed."""
    return max(t for t in (last_schedule, last_missed, created) if t is not None)


def decide(
    schedule: Schedule,
    *,
    cursor: datetime,
    now: datetime,
    runs: Sequence[Run],
    name: str,
    policy: str = DEFAULT_CONCURRENCY_POLICY,
    deadline_seconds: int | None = None,
    suspended: bool = False,
) -> Decision:
    """CronJob's rules: at most one run per evaluation, for the latest due time only.

    Earlier due times (downtime, a suspension, a held-back Forbid) are counted as
    missed; the latest starts unless it is past the starting deadline or Forbid holds it
    back while a run is active. A run already there for it (a restart after the create)
    is adopted, not created again.
    """
    if suspended:
        return Decision("suspended", reason="suspended")
    due = due_times(schedule, cursor, now)
    if due.latest is None:
        return Decision("none")
    latest, missed, through = due.latest, due.earlier, due.earlier_through
    wanted = run_name(name, latest)
    if any(r.name == wanted or r.scheduled == latest for r in runs):
        return Decision("adopt", latest, missed, through, reason="run exists")
    if deadline_seconds is not None and now - latest > timedelta(seconds=deadline_seconds):
        reason = f"more than startingDeadlineSeconds ({deadline_seconds}) late"
        return Decision("miss", latest, missed + 1, latest, reason=reason)
    active = sorted((r for r in runs if not r.finished), key=Run.sort_key)
    if active and policy == FORBID:
        reason = f"concurrencyPolicy Forbid: {active[-1].name} is still running"
        return Decision("wait", latest, missed, through, reason=reason)
    stop = tuple(r.name for r in active if not r.stopping) if policy == REPLACE else ()
    return Decision("start", latest, missed, through, stop=stop)


def runs_to_delete(runs: Iterable[Run], successful_limit: int, failed_limit: int) -> list[str]:
    """Finished runs beyond the history limits, oldest first; running ones are never cut.

    Failed and Cancelled runs (a Replace stops the run it replaces) share the failed limit.
    """
    finished = sorted((r for r in runs if r.finished), key=Run.sort_key, reverse=True)
    succeeded = [r for r in finished if r.phase == SUCCEEDED]
    failed = [r for r in finished if r.phase != SUCCEEDED]
    doomed = succeeded[successful_limit:] + failed[failed_limit:]
    return [r.name for r in sorted(doomed, key=Run.sort_key)]


def latest_success(runs: Iterable[Run], previous: datetime | None) -> datetime | None:
    """lastSuccessfulTime: it only moves forward, even after history limits delete runs."""
    times = [r.finished_at for r in runs if r.phase == SUCCEEDED and r.finished_at]
    if previous is not None:
        times.append(previous)
    return max(times) if times else None
