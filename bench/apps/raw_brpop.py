"""B3's floor: a consumer that BRPOPs a list and answers each message with its start time.

`python -m bench.apps.raw_brpop URL`: the message is the enqueue time; the answer,
LPUSHed to bench:brpop-started, is time.time() taken right after BRPOP returned.
"""

import sys
import time

import redis

QUEUE, ANSWERS, STOP = "bench:brpop", "bench:brpop-started", b"stop"


def main(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.lpush(ANSWERS, b"ready")
    while True:
        # A short block, again and again: redis-py's socket timeout ends an endless one.
        popped = client.brpop([QUEUE], timeout=1)
        started = time.time()
        if popped is None:
            continue
        if popped[1] == STOP:
            return
        client.lpush(ANSWERS, repr(started))


if __name__ == "__main__":
    main(sys.argv[1])
