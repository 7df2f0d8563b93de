"""T0: the workflow-consistency check of `make chaos` finds each kind of inconsistency."""

from celery_harder_dev.chaos.consistency import Sample, status_violations


def counts(pending: int, running: int, succeeded: int) -> dict[str, int]:
    total = pending + running + succeeded
    return {"total": total, "pending": pending, "running": running, "succeeded": succeeded,
            "failed": 0, "cancelled": 0, "skipped": 0}  # fmt: skip


def test_a_run_that_only_moves_forward_is_consistent() -> None:
    reads = [Sample("Pending", counts(3, 0, 0)), Sample("Running", counts(1, 2, 0)),
             Sample("Running", counts(0, 1, 2)), Sample("Succeeded", counts(0, 0, 3))]  # fmt: skip
    assert status_violations(reads, 3, "Succeeded") == []


def test_each_inconsistency_is_named() -> None:
    fell = [Sample("Running", counts(0, 1, 2)), Sample("Running", counts(0, 2, 1))]
    assert status_violations(fell, 3, "Running") == [
        "read 1: succeeded fell",
        "ended Running with {'total': 3, 'pending': 0, 'running': 2, 'succeeded': 1, "
        "'failed': 0, 'cancelled': 0, 'skipped': 0}",
    ]
    double = {**counts(0, 1, 2), "succeeded": 3}  # a redelivered leaf counted twice
    assert "do not add up" in status_violations([Sample("Running", double)], 3, "Running")[0]
    left = [Sample("Succeeded", counts(0, 0, 3)), Sample("Running", counts(0, 0, 3))]
    assert "read 1: left Succeeded for Running" in status_violations(left, 3, "Succeeded")
    assert status_violations([], 3, "Succeeded") == ["no status was read"]
