"""The worker's startup, liveness and readiness probe: is the heartbeat file fresh?

`python -m background.probe --max-age 120` (readiness, startup) exits 0 while the file
the worker touches (background.heartbeat) is younger than `--max-age` seconds: the
consumer holds its queues and the broker answers. `--live` (liveness) also passes
while the reconnecting marker exists: a worker waiting for its broker is healthy, and
restarting it would not bring Redis back. It imports the standard library only:
kubelet starts one interpreter per probe and period, and importing Celery and the
settings would cost each of them about ten times the CPU.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from celery_harder import defaults


def reconnecting_marker(heartbeat: Path) -> Path:
    """The file that exists while the consumer waits to reconnect to its broker."""
    return heartbeat.with_name(heartbeat.name + ".reconnecting")


def is_fresh(path: Path, max_age: float, now: float | None = None) -> bool:
    """Whether the heartbeat file exists and was touched within `max_age` seconds."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= max_age


def is_alive(heartbeat: Path, max_age: float, now: float | None = None) -> bool:
    """Consuming with a fresh heartbeat, or retrying a lost broker connection."""
    return is_fresh(heartbeat, max_age, now) or reconnecting_marker(heartbeat).exists()


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if the worker is ready (or, with --live, alive), 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--file",
        type=Path,
        default=Path(os.environ.get(defaults.HEARTBEAT_FILE_ENV, defaults.HEARTBEAT_FILE)),
        help=f"heartbeat file (default: ${defaults.HEARTBEAT_FILE_ENV}, else the built-in path)",
    )
    parser.add_argument(
        "--live", action="store_true", help="liveness: a worker retrying its broker passes too"
    )
    ns = parser.parse_args(argv)
    if (is_alive if ns.live else is_fresh)(ns.file, ns.max_age):
        return 0
    print(f"heartbeat {ns.file} missing or older than {ns.max_age:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
