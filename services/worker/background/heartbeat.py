"""A heartbeat file touched while the worker consumes, read by the worker's probes.

Probing with `celery inspect ping` imports the whole app and broadcasts on every
probe; a file's age costs nothing. `python -m background.probe` is the probe
(standard library only). The file's age says two things at once: the consumer's
event loop runs (the timer that touches it lives there) and the broker answers (each
beat sends one PING on a connection of its own and touches only on an answer). So a
worker whose broker is gone goes unready even before Celery notices (the readiness
probe's short max-age; celery/celery#8091, apache/airflow#69807), and liveness, with a
longer max-age, restarts a worker whose loop is stuck or whose lost broker it never
noticed.
"""

import logging
from pathlib import Path
from typing import Any

import redis
from celery import bootsteps

from background.probe import reconnecting_marker
from celery_harder.settings import get_settings

logger = logging.getLogger(__name__)


def touch(path: Path) -> None:
    """Create or refresh the heartbeat file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def broker_answers(client: redis.Redis) -> bool:
    """Whether the broker answers a PING within the client's socket timeout."""
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


class HeartbeatFiles:
    """The heartbeat file and the reconnecting marker beside it."""

    def __init__(self, heartbeat: Path) -> None:
        self.heartbeat = heartbeat
        self.reconnecting = reconnecting_marker(heartbeat)

    def consuming(self) -> None:
        """Ready: the consumer holds its queues and the broker answered."""
        touch(self.heartbeat)
        self.reconnecting.unlink(missing_ok=True)

    def lost_connection(self) -> None:
        """Unready but alive: Celery retries its broker, and exits if it gives up."""
        touch(self.reconnecting)
        self.heartbeat.unlink(missing_ok=True)

    def clear(self) -> None:
        """Neither ready nor alive: the worker shuts down, or starts in a reused /tmp."""
        self.heartbeat.unlink(missing_ok=True)
        self.reconnecting.unlink(missing_ok=True)


class HeartbeatStep(bootsteps.StartStopStep):
    """Consumer step: beats from the consumer's own timer while connected."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        settings = get_settings()
        self.files = HeartbeatFiles(settings.heartbeat_file)
        # The emptyDir outlives a container restart: a marker left by the last one lies.
        self.files.clear()
        self.interval = settings.heartbeat_interval
        timeout = settings.redis_timeout
        self.broker = redis.Redis.from_url(
            settings.broker_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        self.files.consuming()
        # The consumer's timer runs in its event loop: a stuck consumer stops the beat.
        self.tref = parent.timer.call_repeatedly(self.interval, self.beat, priority=10)

    def beat(self) -> None:
        """One heartbeat: touch the file if the broker answers."""
        if broker_answers(self.broker):
            self.files.consuming()
        else:
            # The file ages: unready after the readiness max-age, restarted after the
            # liveness one unless Celery notices the loss first and retries its broker.
            logger.warning("heartbeat: the broker did not answer a PING; file not touched")

    def _cancel(self) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def stop(self, parent: Any) -> None:
        # The consumer restarts after a connection loss (and stops before a shutdown).
        self._cancel()
        self.files.lost_connection()

    def shutdown(self, parent: Any) -> None:
        self._cancel()
        self.files.clear()
        self.broker.close()

    terminate = shutdown
