"""T0: the chaos suite's counting: lost, duplicated, the table, hey's summary, RSS growth."""

import pytest

from celery_harder_dev.chaos.cases import FULL, SHORT
from celery_harder_dev.chaos.counting import (
    CaseResult,
    duplicated_tasks,
    lost_tasks,
    render_table,
    tally,
)
from celery_harder_dev.chaos.soak import hey_command, probes
from celery_harder_dev.chaos.soak_counts import (
    Probe,
    SoakCounts,
    SoakResult,
    parse_hey,
    rss_growth,
)


def test_lost_is_anything_not_final_and_revoked_by_no_one() -> None:
    states = {"a": "SUCCESS", "b": "PENDING", "c": "PROGRESS", "d": "REVOKED", "e": "FAILURE"}
    assert lost_tasks(states) == ["b", "c", "d"]


def test_duplicated_counts_bodies_started_more_than_once() -> None:
    assert duplicated_tasks({"a": 1, "b": 2, "c": 0, "d": 3}) == ["b", "d"]


def test_tally_counts_a_row_and_notes_failures() -> None:
    states = {"a": "SUCCESS", "b": "SUCCESS", "c": "FAILURE", "d": "STARTED"}
    row = tally("case", states, {"a": 2, "b": 1, "c": 1}, "note")
    assert row == CaseResult("case", 4, 2, 1, 1, "note; 1 FAILURE")
    assert not row.held


def test_tally_ignores_starts_of_tasks_it_was_not_given() -> None:
    row = tally("case", {"a": "SUCCESS"}, {"a": 1, "other": 5})
    assert (row.duplicated, row.held, row.note) == (0, True, "")


def test_render_table_has_one_line_per_case_under_the_header() -> None:
    rows = [CaseResult("one", 3, 3, 0, 1, "n"), CaseResult("two", 2, 1, 1, 0)]
    lines = render_table(rows).splitlines()
    assert lines[0] == "| case | tasks | completed | lost | duplicated | note |"
    assert lines[2:] == ["| one | 3 | 3 | 0 | 1 | n |", "| two | 2 | 1 | 1 | 0 |  |"]


def test_sizes_leave_room_for_the_disruption() -> None:
    for size in (FULL, SHORT):
        assert size.tasks > 2  # two running at the disruption, the rest queued
        assert size.long > 1.0  # outlives the SIGQUIT case's 1 s soft shutdown
        assert size.bound() > size.tasks * size.short / 2


HEY_OUTPUT = """
Summary:
  Requests/sec:\t612.1

Status code distribution:
  [202]\t1375 responses
  [503]\t2 responses

Error distribution:
  [3]\tPost "http://127.0.0.1:1/add": dial tcp 127.0.0.1:1: connect: connection refused
"""


def test_parse_hey_reads_statuses_and_errors() -> None:
    statuses, errors = parse_hey(HEY_OUTPUT)
    assert statuses == {202: 1375, 503: 2}
    assert list(errors.values()) == [3]
    assert "connection refused" in next(iter(errors))


def test_probe_expectations_and_counts() -> None:
    valid = Probe("ok", "GET", "/healthz", True)
    invalid = Probe("bad", "POST", "/add", False, json={"x": "a"})
    counts = SoakCounts()
    counts.record(valid, 200, 10)
    counts.record(invalid, 422, 5)
    counts.record(invalid, 202)  # accepted though invalid
    counts.record(valid, 500, 2)
    assert counts.requests == 18
    assert counts.server_errors == 2
    assert counts.by_class() == {"2xx": 11, "4xx": 5, "5xx": 2}
    assert counts.unexpected == {"bad -> 202": 1, "ok -> 500": 2}


def result(counts: SoakCounts, warm: int, end: int) -> SoakResult:
    return SoakResult(counts, 60, 100.0, 40, warm, end, 1.0)


def test_soak_holds_only_without_5xx_surprises_errors_or_rss_growth() -> None:
    clean = SoakCounts()
    clean.record(Probe("ok", "GET", "/", True), 200, 100)
    assert result(clean, 1000, 1100).held
    assert not result(clean, 1000, 1101).held
    broken = SoakCounts()
    broken.record(Probe("ok", "GET", "/", True), 503)
    assert not result(broken, 1000, 1000).held
    assert rss_growth(1000, 950) == pytest.approx(-0.05)
    with pytest.raises(ValueError):
        rss_growth(0, 1)


def test_the_mix_is_half_valid_and_hey_sends_bodies_and_the_key() -> None:
    mix = probes("some-id")
    assert sum(p.valid for p in mix) == sum(not p.valid for p in mix) == 5
    malformed = next(p for p in mix if p.name == "add-malformed")
    cmd = hey_command("hey", "http://api", malformed, 2.5, 4, "secret")
    assert cmd[:7] == ["hey", "-z", "2.5s", "-c", "4", "-m", "POST"]
    assert cmd[9:11] == ["-H", "X-API-Key: secret"]
    assert cmd[-3:] == ["-d", '{"x": 2,', "http://api/add"]
    plain = hey_command("hey", "http://api", mix[1], 1, 1, None)
    assert "-H" not in plain and "-d" not in plain and plain[-1] == "http://api/result/some-id"
