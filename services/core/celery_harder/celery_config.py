"""The one Celery configuration shared by the worker, the API and the operator."""

from typing import Any

from celery import Celery

from celery_harder.client_backend import client_backend_url
from celery_harder.settings import Settings, get_settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for every process; each non-default choice says why."""
    # One visibility timeout for broker and result backend, so neither side restores early.
    transport_options = {
        "visibility_timeout": settings.visibility_timeout,
        # Fail fast on an unreachable Redis instead of hanging a request or a probe.
        "socket_connect_timeout": settings.redis_timeout,
    }
    return {
        # JSON only: pickle would let anyone who can write to Redis run code in a worker.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": settings.queue,
        # Acknowledge after the task ran, so a task whose process or pod dies is redelivered.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Fetch only when a pool process is free: queued work stays in the Redis list,
        # where KEDA and the exporter can count it, and no worker hoards messages.
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": dict(transport_options),
        "result_expires": settings.result_expires,
        # Show STARTED, so a workflow can tell running leaves from queued ones.
        "task_track_started": True,
        # Task events feed Flower and celery-exporter.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # Keep retrying the broker at start-up: Redis may come up after the worker pod.
        "broker_connection_retry_on_startup": True,
        # Publishing gives up quickly so the API can answer 503 instead of hanging.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": settings.task_soft_time_limit,
        # A cold shutdown first waits this long, then requeues unacked work instead of losing it.
        "worker_soft_shutdown_timeout": settings.soft_shutdown_timeout,
        "worker_enable_soft_shutdown_on_idle": True,
        # On broker connection loss running acks_late tasks will be redelivered: stop them,
        # rather than run them twice.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


def create_celery_app(
    main: str,
    settings: Settings | None = None,
    include: list[str] | None = None,
    *,
    send_only: bool = False,
) -> Celery:
    """A Celery app configured from settings; the worker adds `include`.

    `send_only` apps (the API, the operator) never wait on results through Celery.
    """
    settings = settings or get_settings()
    backend = settings.result_backend_url
    app = Celery(
        main,
        broker=settings.broker_url,
        backend=client_backend_url(backend) if send_only else backend,
        include=include or [],
    )
    app.conf.update(celery_config(settings))
    return app
