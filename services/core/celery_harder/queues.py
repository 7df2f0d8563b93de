"""Redis keys of a Celery queue: the list itself and its priority sub-lists."""

# kombu's Redis transport keeps priorities 0-9 in four steps; non-zero steps live in
# sibling lists named queue + "\x06\x16" + step, which a plain LLEN of the queue misses.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def queue_keys(queue: str) -> list[str]:
    """Every Redis list that holds waiting messages of `queue`."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]
