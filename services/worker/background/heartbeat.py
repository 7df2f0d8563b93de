"""A heartbeat file touched while the worker consumes, read by the liveness probe.

Probing with `celery inspect ping` imports the whole app and broadcasts on every
probe; a file's age costs nothing. Run `python -m background.heartbeat --max-age 60`
as the probe: it exits 0 while the file is fresh.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from celery import bootsteps

from celery_harder.settings import get_settings


def touch(path: Path) -> None:
    """Create or refresh the heartbeat file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def is_fresh(path: Path, max_age: float, now: float | None = None) -> bool:
    """Whether the heartbeat file exists and was touched within `max_age` seconds."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= max_age


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


def main(argv: list[str] | None = None) -> int:
    """Probe entry point: exit 0 if the heartbeat is fresh, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--file", type=Path, default=None, help="heartbeat file to check")
    ns = parser.parse_args(argv)
    path = ns.file or get_settings().heartbeat_file
    if is_fresh(path, ns.max_age):
        return 0
    print(f"heartbeat {path} missing or older than {ns.max_age:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
