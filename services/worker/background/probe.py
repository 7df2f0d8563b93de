"""The worker's startup, liveness and readiness probe: is the heartbeat file fresh?

`python -m background.probe --max-age 120` exits 0 while the file the worker touches
(background.heartbeat) is younger than `--max-age` seconds. It imports the standard
library only: kubelet starts one interpreter per probe and period, and importing
Celery and the settings would cost each of them about ten times the CPU.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from celery_harder import defaults


def is_fresh(path: Path, max_age: float, now: float | None = None) -> bool:
    """Whether the heartbeat file exists and was touched within `max_age` seconds."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= max_age


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if the heartbeat is fresh, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--file",
        type=Path,
        default=Path(os.environ.get(defaults.HEARTBEAT_FILE_ENV, defaults.HEARTBEAT_FILE)),
        help=f"heartbeat file (default: ${defaults.HEARTBEAT_FILE_ENV}, else the built-in path)",
    )
    ns = parser.parse_args(argv)
    if is_fresh(ns.file, ns.max_age):
        return 0
    print(f"heartbeat {ns.file} missing or older than {ns.max_age:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
