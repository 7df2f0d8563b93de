"""T0: the settings that carry work through a Redis restart (tests/resilience proves them)."""

from celery_harder.celery_config import celery_config, create_celery_app
from celery_harder.settings import Settings


def test_running_tasks_survive_a_broker_connection_loss() -> None:
    conf = celery_config(Settings())
    # Pinned off: Celery 6 turns it on, and on Redis it revokes the running tasks.
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is False
    assert conf["result_backend_always_retry"] is True
    assert conf["result_backend_max_sleep_between_retries_ms"] == 1000
    assert "result_backend_max_retries" not in conf  # Celery's default: unlimited


def test_worker_retries_result_writes_but_clients_answer_503() -> None:
    worker = create_celery_app("w", Settings())
    client = create_celery_app("c", Settings(), send_only=True)
    assert worker.conf.result_backend_always_retry is True
    assert client.conf.result_backend_always_retry is False
