"""T0: backend metadata becomes the API's status."""

from celery_harder.results import TaskError, describe_meta


def test_missing_meta_is_pending() -> None:
    assert describe_meta("t", None).state == "PENDING"


def test_progress_meta_is_progress_not_result() -> None:
    status = describe_meta("t", {"status": "PROGRESS", "result": {"percent": 40}})
    assert status.progress == {"percent": 40} and status.result is None


def test_failure_carries_type_and_message() -> None:
    meta = {"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["bad", 1]}}
    assert describe_meta("t", meta).error == TaskError("ValueError", "bad 1")


def test_started_meta_is_not_a_result() -> None:
    status = describe_meta("t", {"status": "STARTED", "result": {"pid": 1, "hostname": "h"}})
    assert status.result is None and status.progress is None
