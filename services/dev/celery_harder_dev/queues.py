"""Redis keys of a Celery queue: the list itself and its priority sub-lists.

kombu's Redis transport keeps priorities 0-9 in steps; every non-zero step lives in
a sibling list named queue + separator + step, which a plain LLEN of the queue misses.
The names come from kombu's own constants; the chart's `celery-harder.queueKeys`
helper renders the same names, and tests/chart holds the two equal.
"""

from kombu.transport.redis import PRIORITY_STEPS, Channel

PRIORITY_SEPARATOR: str = Channel.sep


def queue_keys(queue: str) -> list[str]:
    """Every Redis list that holds waiting messages of `queue`, in kombu's step order."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
