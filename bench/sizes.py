"""How big a run is: `--size tiny` keeps every benchmark working, `full` is `make bench`."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    reps: int  # every figure is the median of this many repetitions (at least 5)
    redis_requests: int  # B0: requests per redis-benchmark test
    loop_messages: int  # B0: messages through the Python LPUSH/BRPOP loop
    http_requests: int  # B1: requests per hey run
    clients: tuple[int, ...]  # B1: hey's concurrency levels
    trials: int  # B3: sequential enqueue-to-start trials per repetition
    drain_tasks: int  # B2: tasks pre-loaded per drain
    concurrency: int  # B2: total concurrency of every worker measured
    chain: int  # B4 shapes
    group: int
    chords: tuple[int, ...]
    leaves: int  # B5: leaves of the workflow whose status is read
    status_reads: int  # B5: reads per repetition
    workflows: int  # B6: TaskWorkflows created one after the other (and as many POST /workflows)
    chain_steps: int  # B6c: steps of the long chain
    throughput: int  # B6b: TaskWorkflows created at once
    finished: int  # B6d: finished TaskWorkflows present
    window: float  # B6d: seconds of operator CPU accounting per side


SIZES = {
    "tiny": Size(
        "tiny",
        5,
        2_000,
        200,
        200,
        (32, 128),
        10,
        100,
        2,
        3,
        10,
        (10, 50),
        100,
        5,
        5,
        10,
        5,
        20,
        2.0,
    ),
    "full": Size(
        "full",
        5,
        100_000,
        10_000,
        3_000,
        (32, 128),
        200,
        20_000,
        2,
        10,
        100,
        (100, 1000),
        1000,
        20,
        100,
        100,
        300,
        10_000,
        30.0,
    ),
}
