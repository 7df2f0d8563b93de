"""The time CronTaskWorkflow schedules see: the real UTC time, or a test's stopped clock."""

from datetime import UTC, datetime

from celery_harder.settings import get_settings
from celery_harder_operator.schedule import parse_time


def now() -> datetime:
    """UTC now; with CELERY_HARDER_OPERATOR_CLOCK_FILE_FOR_TESTS, the time in that file.

    A missing or empty file means the real time, so a test can start and stop its clock.
    """
    path = get_settings().operator_clock_file_for_tests
    if path is not None:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        moment = parse_time(text)
        if moment is not None:
            return moment
    return datetime.now(UTC)
