"""The one Celery configuration shared by the worker, the API and the operator."""

from typing import Any

from celery import Celery

from celery_harder import kombu_client, publish_batch
from celery_harder.client_backend import client_backend_url
from celery_harder.settings import Settings, get_settings
from celery_harder.worker_backend import worker_backend_url


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
        # Each pool keeps its in-flight messages in a hash of its own (and restores only
        # those), so that KEDA scales a pool on its own running work.
        "broker_transport_options": {
            **transport_options,
            "unacked_key": settings.unacked_key,
            "unacked_index_key": f"{settings.unacked_key}_index",
            "unacked_mutex_key": f"{settings.unacked_key}_mutex",
        },
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
        # Keep running tasks running when the broker connection drops (a Redis restart).
        # Cancelling them rests on an AMQP premise, that an unacknowledged message is
        # redelivered once its channel is gone. On Redis it is not: kombu keeps it in the
        # `unacked` hash until the visibility timeout (an hour), and the cancel writes a
        # RETRY state that fails while Redis is down, so the terminated task is stored as
        # REVOKED, acknowledged, and never runs again. Letting it finish is safe: a Redis
        # ack is an HDEL/ZREM by delivery tag that the old channel sends over a new
        # connection (kombu's QoS.ack), so a task that ends after the reconnect is
        # acknowledged and runs once. Pinned, because Celery 6 turns the default on.
        # At-least-once still leaves a copy in two windows: the loss is noticed while
        # Redis answers (a dropped connection, not a dead server), so closing the channel
        # restores the running tasks' messages to the queue; or Redis dies between a
        # task's result write and its ack, so the message comes back after the
        # visibility timeout. CatalogTask acknowledges a copy whose SUCCESS is stored
        # without running it, so only a copy that starts while the original still runs
        # (an idle process, another worker) executes twice.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # A task that finishes, or reports progress, while Redis is down retries the write
        # instead of failing: Celery's Redis backend reads the current state before every
        # write (`_store_result`) with no retry of its own, so without this the first
        # write during an outage raises, and a task that ran is recorded as FAILURE.
        # Retries stay unlimited (result_backend_max_retries, Celery's default): a pool
        # process waits for Redis as long as the rest of the worker does. At most 1 s
        # between attempts (default 10 s), so a result lands within a second of Redis
        # coming back.
        "result_backend_always_retry": True,
        "result_backend_max_sleep_between_retries_ms": 1000,
    }


def fast_profile(settings: Settings) -> dict[str, Any]:
    """What a `fast` worker (CELERY_HARDER_WORKER_PROFILE=fast) changes, for short idempotent
    tasks: Celery's throughput defaults instead of the delivery guarantees above.

    docs/reliability.md, "The fast profile", states what it gives up: a task running when
    its worker dies is lost (acknowledged before it ran), one whose pool process dies is
    FAILURE instead of rerun, and nothing shows STARTED. Events, JSON only, the catalog
    check, the revoke and redelivery checks and the soft shutdown stay as they are.
    """
    return {
        # Acknowledge when a pool process accepts the task, before it runs.
        "task_acks_late": False,
        "task_reject_on_worker_lost": False,
        # Each pool process reserves this many messages ahead (kept in the pool's unacked
        # hash, where KEDA's in-flight count still sees them).
        "worker_prefetch_multiplier": settings.fast_prefetch_multiplier,
        "worker_disable_prefetch": False,
        # One write per task (the result), not two.
        "task_track_started": False,
    }


def worker_config(settings: Settings) -> dict[str, Any]:
    """The worker's Celery settings: celery_config, and its profile's changes."""
    conf = celery_config(settings)
    if settings.worker_profile == "fast":
        conf.update(fast_profile(settings))
    return conf


def create_celery_app(
    main: str,
    settings: Settings | None = None,
    include: list[str] | None = None,
    *,
    send_only: bool = False,
    worker: bool = False,
) -> Celery:
    """A Celery app configured from settings; the worker adds `include`.

    `send_only` apps (the API, the operator) never wait on results through Celery;
    the `worker` app takes its profile's settings (worker_config) and writes states
    in one round trip (WorkerRedisBackend).
    """
    settings = settings or get_settings()
    kombu_client.install()
    backend = settings.result_backend_url
    if send_only:
        backend = client_backend_url(backend)
    elif worker:
        backend = worker_backend_url(backend)
    app = Celery(main, broker=settings.broker_url, include=include or [])
    # Celery's conf.result_backend prefers the CELERY_RESULT_BACKEND variable (the seed's
    # name, set in every pod) to the app's own setting, which drops the class chosen
    # above; backend_cls is read before both. Settings read that variable already.
    app.backend_cls = backend
    app.conf.update(worker_config(settings) if worker else celery_config(settings))
    if send_only:
        # Clients answer 503 within redis_timeout; they must never wait out an outage.
        app.conf.result_backend_always_retry = False
        publish_batch.install(app)
    return app
