"""T0: queue names, the configured queue list, and which queue a call goes to."""

import pytest

from celery_harder.catalog import CATALOG
from celery_harder.routing import (
    UnknownQueueError,
    check_queue,
    check_queue_name,
    split_queue_list,
    task_queue,
)
from celery_harder.settings import Settings


def test_the_queue_list_is_comma_or_space_separated_and_keeps_order() -> None:
    assert split_queue_list("celery, cpu  io,cpu") == ("celery", "cpu", "io")
    assert split_queue_list("") == ()


@pytest.mark.parametrize("bad", ["", "a,b", "a b", "a\x06\x163", "x" * 201, "ü"])
def test_malformed_queue_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        check_queue_name(bad)


def test_unknown_queue_names_the_configured_ones() -> None:
    assert check_queue("cpu", ("celery", "cpu")) == "cpu"
    with pytest.raises(UnknownQueueError, match="unknown queue 'gpu'; configured queues: celery"):
        check_queue("gpu", ("celery",))


def test_a_call_goes_to_its_option_then_its_catalog_queue_then_the_default() -> None:
    assert task_queue("cpu", {"queue": "io"}, "celery") == "io"
    assert task_queue("cpu", {}, "celery") == "cpu"
    assert task_queue(None, {"queue": None}, "celery") == "celery"


def test_every_catalog_task_keeps_the_default_queue() -> None:
    """Nothing changes for current users: every task still goes to CELERY_HARDER_QUEUE."""
    assert {spec.queue for spec in CATALOG.values()} == {None}


def test_settings_read_the_queue_list_and_always_know_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().known_queues == ("celery",)
    monkeypatch.setenv("CELERY_HARDER_QUEUES", "celery,cpu")
    assert Settings().known_queues == ("celery", "cpu")
    monkeypatch.setenv("CELERY_HARDER_QUEUE", "jobs")
    assert Settings().known_queues == ("jobs", "celery", "cpu")
    monkeypatch.setenv("CELERY_HARDER_QUEUES", "celery,bad/name")
    with pytest.raises(ValueError, match="must match"):
        Settings()
