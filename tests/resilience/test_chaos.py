"""T1: the short run of `make chaos`: every case counted on real processes, and a soak smoke.

The full run (`make chaos`, celery_harder_dev.chaos) has more tasks, a 30 s Redis
outage, the whole-worker kill and a 60 s soak; this one keeps each case to seconds.
"""

from pathlib import Path

import pytest

from celery_harder_dev.chaos.cases import CASES, SHORT, Case, run_case
from celery_harder_dev.chaos.soak import run_soak

SHORT_CASES = [case for case in CASES if case.in_short_run]


@pytest.mark.parametrize("case", SHORT_CASES, ids=[c.name for c in SHORT_CASES])
def test_nothing_is_lost(case: Case, tmp_path: Path) -> None:
    row = run_case(case, SHORT, tmp_path)
    print(row)
    assert row.tasks == SHORT.tasks
    assert row.lost == 0, row
    assert row.completed == row.tasks, row
    assert row.violations == (), row  # e.g. a workflow status that went backwards


def test_api_soak_smoke_answers_no_5xx_and_refuses_every_invalid_request(tmp_path: Path) -> None:
    result = run_soak(tmp_path, seconds=4, warmup=1)
    print("\n".join(result.lines()))
    counts = result.counts
    assert counts.requests > 100, result.lines()
    assert counts.server_errors == 0, counts.statuses
    assert not counts.unexpected, counts.unexpected
    assert not counts.errors, counts.errors
    assert set(counts.by_class()) == {"2xx", "4xx"}
