"""A heartbeat file touched while the worker consumes, read by the worker's probes.

Probing with `celery inspect ping` imports the whole app and broadcasts on every
probe; a file's age costs nothing. `python -m background.probe --max-age 60` is the
probe (standard library only): it exits 0 while the file is fresh.
"""

from pathlib import Path
from typing import Any

from celery import bootsteps

from celery_harder.settings import get_settings


def touch(path: Path) -> None:
    """Create or refresh the heartbeat file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


class HeartbeatStep(bootsteps.StartStopStep):
    """Consumer step: touches the file from the consumer's own timer while connected."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        settings = get_settings()
        self.path = settings.heartbeat_file
        self.interval = settings.heartbeat_interval
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        touch(self.path)
        # The consumer's timer runs in its event loop: a stuck consumer stops the beat.
        self.tref = parent.timer.call_repeatedly(self.interval, touch, (self.path,), priority=10)

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        # A stopped consumer must not look alive to the probe.
        self.path.unlink(missing_ok=True)

    shutdown = stop
