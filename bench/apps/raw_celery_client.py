"""B3's raw Celery client in a process of its own: `python -m bench.apps.raw_celery_client URL N`.

celery-harder's client apps cache kombu's Redis client per channel, a patch of kombu's
Channel class (celery_harder.kombu_client): in the bench's own process it would speed
raw Celery's sends up too, and the baseline would not be raw. This process imports no
celery-harder app, checks that kombu is unpatched, runs WARMUP trials, then N, and
prints the N enqueue-to-start times (seconds) as JSON.
"""

import json
import sys

from bench.latency import run_raw_celery_trials
from celery_harder import kombu_client

WARMUP = 20


def main() -> None:
    url, trials = sys.argv[1], int(sys.argv[2])
    if kombu_client.installed():
        raise SystemExit("kombu is patched by celery-harder: not a raw Celery client")
    run = run_raw_celery_trials(url)
    run(WARMUP)  # connections, imports, the worker's first tasks
    print(json.dumps(run(trials)))


if __name__ == "__main__":
    main()
