"""Whether a workflow's status stayed consistent while its leaves were redelivered."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from celery_harder.workflow.status import FINAL_PHASES

DONE = ("succeeded", "failed", "cancelled", "skipped")  # counts that never go back


@dataclass(frozen=True)
class Sample:
    """One read of a workflow's status: its phase and its counts."""

    phase: str
    counts: Mapping[str, int]


def status_violations(samples: Sequence[Sample], total: int, final: str) -> list[str]:
    """What was inconsistent in a series of status reads, in order; empty if nothing.

    Consistent means: every read counts each leaf once (the counts sum to `total`), no
    finished count ever falls (a redelivered leaf is not un-done), a final phase is
    never left, and the last read is `final` with every leaf counted as done.
    """
    problems: list[str] = []
    for i, sample in enumerate(samples):
        counts = sample.counts
        summed = sum(v for k, v in counts.items() if k != "total")
        if counts.get("total") != total or summed != total:
            problems.append(f"read {i}: counts {dict(counts)} do not add up to {total}")
        if i:
            before = samples[i - 1]
            fell = [k for k in DONE if counts.get(k, 0) < before.counts.get(k, 0)]
            if fell:
                problems.append(f"read {i}: {', '.join(fell)} fell")
            if before.phase in FINAL_PHASES and sample.phase != before.phase:
                problems.append(f"read {i}: left {before.phase} for {sample.phase}")
    if not samples:
        problems.append("no status was read")
    elif samples[-1].phase != final or samples[-1].counts.get("succeeded") != total:
        problems.append(f"ended {samples[-1].phase} with {dict(samples[-1].counts)}")
    return problems
