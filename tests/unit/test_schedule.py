"""T0: the CronTaskWorkflow schedule logic (celery_harder_operator.schedule), pure functions."""

from datetime import UTC, datetime, timedelta

import pytest

from celery_harder_operator import schedule as sch

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, on a minute boundary


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def every_minute() -> sch.Schedule:
    return sch.parse_schedule("* * * * *", None, T0)


def run(minute: float, phase: str | None = None, **kw) -> sch.Run:
    scheduled = at(minute)
    return sch.Run(sch.run_name("nightly", scheduled), f"uid-{minute}", scheduled, phase, **kw)


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "*/5 * * * *", "0 3 * * mon-fri", "0 0 1 jan ?", "5/15 1-4,6 * * 0",
     "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
     "  0   3 * *   *  "],
)  # fmt: skip
def test_valid_schedules(expression: str) -> None:
    assert sch.parse_schedule(expression, "UTC", T0).next_after(T0) > T0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "has 5 fields"),
        ("every minute", "has 5 fields"),
        ("* * * * * *", "has 5 fields"),  # seconds: not CronJob's grammar
        ("61 * * * *", "out of range"),
        ("*/0 * * * *", "out of range"),
        ("1-60 * * * *", "out of range"),
        ("R * * * *", "minute field 'R'"),  # croniter's random minute: another time per restart
        ("H * * * *", "minute field 'H'"),
        ("0 0 L * *", "day of month field 'L'"),
        ("0 0 * * mon#2", "day of week field 'mon#2'"),
        ("@every 5m", "unknown descriptor"),
        ("@reboot", "unknown descriptor"),
        ("TZ=Europe/Berlin 0 3 * * *", "set spec.timeZone"),
        ("CRON_TZ=UTC 0 3 * * *", "set spec.timeZone"),
        ("0 0 30 2 *", "never matches"),
    ],
)
def test_invalid_schedules_say_why(expression: str, message: str) -> None:
    with pytest.raises(sch.ScheduleError, match=message.replace("(", r"\(")):
        sch.parse_schedule(expression, "UTC", T0)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "/etc/localtime", "Europe/"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(sch.ScheduleError, match="unknown time zone"):
        sch.parse_schedule("0 3 * * *", zone, T0)


def test_time_zone_moves_the_times_and_defaults_to_utc() -> None:
    assert sch.parse_schedule("0 3 * * *", None, T0).next_after(T0) == datetime(
        2026, 3, 3, 3, 0, tzinfo=UTC
    )
    # 03:00 in Tokyo (UTC+9, no DST) is 18:00 UTC the day before
    tokyo = sch.parse_schedule("0 3 * * *", "Asia/Tokyo", T0)
    assert tokyo.next_after(T0) == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def test_daylight_saving_time_in_a_zone() -> None:
    """Europe/Berlin skips 02:00-03:00 on 29 March 2026 and repeats 02:00-03:00 on 25 October."""
    berlin = sch.parse_schedule("30 2 * * *", "Europe/Berlin", T0)
    spring = [berlin.next_after(datetime(2026, 3, 27, 12, tzinfo=UTC))]
    for _ in range(2):
        spring.append(berlin.next_after(spring[-1]))
    # the 02:30 that does not exist runs at the end of the gap, 03:00 CEST (01:00 UTC)
    assert [t.strftime("%d %H:%M") for t in spring] == ["28 01:30", "29 01:00", "30 00:30"]
    autumn = [berlin.next_after(datetime(2026, 10, 24, 12, tzinfo=UTC))]
    for _ in range(2):
        autumn.append(berlin.next_after(autumn[-1]))
    # the 02:30 that happens twice runs twice, an hour apart, under two run names
    assert [t.strftime("%d %H:%M") for t in autumn] == ["25 00:30", "25 01:30", "26 01:30"]
    assert len({sch.run_name("x", t) for t in autumn}) == 3


# --------------------------------------------------------------- run names


def test_run_name_is_cronjobs_minutes_since_the_epoch() -> None:
    assert sch.run_name("nightly", T0) == f"nightly-{int(T0.timestamp()) // 60}"
    assert sch.run_name("nightly", at(1)) != sch.run_name("nightly", T0)
    # the same time always gives the same name, whatever the zone it is written in
    assert sch.run_name("n", T0.astimezone(sch.parse_time_zone("Asia/Tokyo"))) == sch.run_name(
        "n", T0
    )


def test_times_round_trip() -> None:
    assert sch.format_time(T0) == "2026-03-02T12:00:00Z"
    assert sch.parse_time("2026-03-02T12:00:00Z") == T0
    assert sch.parse_time(None) is None and sch.parse_time("") is None


# --------------------------------------------------------------- due times


def test_due_times_between_cursor_and_now() -> None:
    s = every_minute()
    assert sch.due_times(s, T0, at(0.5)) == sch.Due(None)
    assert sch.due_times(s, T0, at(1)) == sch.Due(at(1), 0, None)  # now itself is due
    assert sch.due_times(s, T0, at(3.5)) == sch.Due(at(3), 2, at(2))


def test_due_times_are_bounded_after_a_long_downtime() -> None:
    s = every_minute()
    year = at(365 * 24 * 60 + 0.5)
    due = sch.due_times(s, T0, year)
    assert due.latest == at(365 * 24 * 60)
    assert due.earlier == sch.MAX_COUNTED
    assert due.earlier_through == at(365 * 24 * 60 - 1)


def test_cursor_is_the_latest_of_schedule_missed_and_creation() -> None:
    assert sch.evaluated_through(None, None, T0) == T0
    assert sch.evaluated_through(at(5), None, T0) == at(5)
    assert sch.evaluated_through(at(5), at(7), T0) == at(7)


# ----------------------------------------------------------------- decide


def decide(now: float, runs=(), cursor: float = 0, **kw) -> sch.Decision:
    return sch.decide(every_minute(), cursor=at(cursor), now=at(now), runs=list(runs),
                      name="nightly", **kw)  # fmt: skip


def test_nothing_due_nothing_done() -> None:
    assert decide(0.9).action == "none"


def test_a_due_time_starts_a_run() -> None:
    d = decide(1.1)
    assert (d.action, d.scheduled, d.missed, d.stop) == ("start", at(1), 0, ())


def test_after_downtime_only_the_latest_starts_and_the_rest_are_counted() -> None:
    d = decide(10.2)
    assert (d.action, d.scheduled, d.missed, d.missed_through) == ("start", at(10), 9, at(9))


def test_the_latest_is_missed_past_the_starting_deadline() -> None:
    d = decide(10.5, deadline_seconds=20)
    assert (d.action, d.scheduled, d.missed, d.missed_through) == ("miss", at(10), 10, at(10))
    assert "startingDeadlineSeconds (20)" in d.reason
    assert decide(10.3, deadline_seconds=20).action == "start"  # 18 s late: in time


def test_a_run_already_there_is_adopted_not_created_again() -> None:
    """The operator died between the create and the status patch: the name is taken."""
    d = decide(1.2, runs=[run(1)])
    assert (d.action, d.scheduled) == ("adopt", at(1))
    # found by its scheduled-at annotation too, whatever its name
    other = sch.Run("renamed", "u", at(1))
    assert decide(1.2, runs=[other]).action == "adopt"


def test_suspended_does_nothing_and_counts_nothing_yet() -> None:
    d = decide(30, suspended=True)
    assert (d.action, d.missed) == ("suspended", 0)
    # once resumed, the times that passed are counted and the latest starts (CronJob's rule)
    d = decide(30, suspended=False)
    assert (d.action, d.scheduled, d.missed) == ("start", at(30), 29)


def test_allow_runs_beside_an_active_run() -> None:
    d = decide(2.1, runs=[run(1, "Running")], cursor=1)
    assert (d.action, d.scheduled, d.stop) == ("start", at(2), ())


def test_forbid_holds_the_run_back_while_one_is_active() -> None:
    d = decide(2.1, runs=[run(1, "Running")], cursor=1, policy=sch.FORBID)
    assert (d.action, d.scheduled, d.missed) == ("wait", at(2), 0)
    assert "nightly-" in d.reason and "still running" in d.reason
    # a run that has not been dispatched yet (no phase) is active too
    assert decide(2.1, runs=[run(1)], cursor=1, policy=sch.FORBID).action == "wait"
    # finished: the held-back time starts late, as CronJob does without a deadline
    d = decide(2.9, runs=[run(1, "Succeeded")], cursor=1, policy=sch.FORBID)
    assert (d.action, d.scheduled) == ("start", at(2))


def test_forbid_with_a_deadline_skips_the_held_back_run() -> None:
    runs = [run(1, "Running")]
    d = decide(2.9, runs=runs, cursor=1, policy=sch.FORBID, deadline_seconds=30)
    assert (d.action, d.missed) == ("miss", 1)
    # the next time supersedes a held-back one: counted as missed once, then the cursor moves
    d = decide(3.1, runs=runs, cursor=1, policy=sch.FORBID)
    assert (d.action, d.scheduled, d.missed, d.missed_through) == ("wait", at(3), 1, at(2))
    d = decide(3.2, runs=runs, cursor=2, policy=sch.FORBID)
    assert (d.action, d.missed) == ("wait", 0)


def test_replace_stops_the_active_runs_and_starts() -> None:
    runs = [run(0, "Succeeded"), run(1, "Running"), run(2, "Running", stopping=True)]
    d = decide(3.1, runs=runs, cursor=2, policy=sch.REPLACE)
    # the finished one is left alone; the one already stopping is not asked twice
    assert (d.action, d.scheduled, d.stop) == ("start", at(3), (runs[1].name,))


# ---------------------------------------------------------------- history


def test_history_limits_keep_the_newest_finished_runs() -> None:
    runs = [
        run(1, "Succeeded"), run(2, "Failed"), run(3, "Succeeded"), run(4, "Cancelled"),
        run(5, "Succeeded"), run(6, "Succeeded"), run(7, "Running"), run(8),
    ]  # fmt: skip
    names = {r.scheduled: r.name for r in runs}
    doomed = sch.runs_to_delete(runs, successful_limit=2, failed_limit=1)
    # Failed and Cancelled share the failed limit; running and new runs are never cut
    assert doomed == [names[at(1)], names[at(2)], names[at(3)]]
    assert sch.runs_to_delete(runs, 0, 0) == [names[at(m)] for m in (1, 2, 3, 4, 5, 6)]
    assert sch.runs_to_delete(runs, 10, 10) == []


def test_last_success_only_moves_forward() -> None:
    runs = [run(1, "Succeeded", finished_at=at(1.5)), run(2, "Failed", finished_at=at(2.5))]
    assert sch.latest_success(runs, None) == at(1.5)
    assert sch.latest_success(runs, at(9)) == at(9)  # a deleted run's success is kept
    assert sch.latest_success([], None) is None


def test_the_next_time_is_after_the_cursor_when_the_clock_is_behind_it() -> None:
    schedule = every_minute()
    created = T0.replace(second=2)  # stamped by an API server ahead of this clock
    behind = created - timedelta(seconds=5)
    assert sch.next_time(schedule, created, behind) == created.replace(second=0) + timedelta(
        minutes=1
    )
    assert sch.next_time(schedule, behind, created) == sch.next_time(schedule, created, created)
