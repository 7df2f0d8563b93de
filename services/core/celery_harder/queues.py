"""Where a queue's messages live in Redis: waiting lists and in-flight hashes.

kombu's Redis transport keeps priorities 0-9 in steps; every non-zero step lives in
a sibling list named queue + separator + step, which a plain LLEN of the queue
misses. Delivered, unacknowledged messages sit in the consuming pool's `unacked`
hash (kombu's `unacked_key`), each value the JSON `[message, exchange, routing_key]`.
The names come from kombu's own constants (the project sets neither `sep` nor
`priority_steps`); the chart's `celery-harder.queueKeys` helper renders the same
names, and tests/chart holds the two equal.
"""

import json
from collections.abc import Collection, Iterable

from kombu.transport.redis import PRIORITY_STEPS, Channel

PRIORITY_SEPARATOR: str = Channel.sep
#: In-flight messages whose routing key names no configured queue.
OTHER_QUEUE = "(other)"


def priority_keys(queue: str) -> list[tuple[int, str]]:
    """`(step, Redis list)` for every priority step of `queue`, in kombu's step order."""
    return [
        (step, queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}")
        for step in PRIORITY_STEPS
    ]


def queue_keys(queue: str) -> list[str]:
    """Every Redis list that holds waiting messages of `queue`, in kombu's step order."""
    return [key for _, key in priority_keys(queue)]


def unacked_queue(value: bytes | str, queues: Collection[str]) -> str:
    """The queue of one `unacked` hash value: its routing key, if that is a known queue.

    Celery declares each queue with a routing key of its own name. Anything else (a
    foreign routing key, a value that is not kombu's JSON) is OTHER_QUEUE, so that the
    label stays bounded by the configured queues whatever was written to Redis.
    """
    try:
        entry = json.loads(value)
    except ValueError:
        return OTHER_QUEUE
    if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], str):
        routing_key = entry[2]
        if routing_key in queues:
            return routing_key
    return OTHER_QUEUE


def in_flight_by_queue(values: Iterable[bytes | str], queues: Collection[str]) -> dict[str, int]:
    """Messages in flight per queue from `unacked` hash values: every queue, zeros included.

    OTHER_QUEUE appears only when some value belongs to no configured queue.
    """
    counts = dict.fromkeys(queues, 0)
    for value in values:
        queue = unacked_queue(value, queues)
        counts[queue] = counts.get(queue, 0) + 1
    return counts
