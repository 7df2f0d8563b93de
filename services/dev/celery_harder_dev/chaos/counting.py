"""Pure counting of what became of a chaos case's tasks, and the table that reports it."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from celery_harder.results import FAILURE, READY_STATES, REVOKED, SUCCESS


def lost_tasks(states: Mapping[str, str]) -> list[str]:
    """Task ids with no final state, or REVOKED though no one revoked them."""
    # Nobody revokes a task in these cases, so REVOKED is a task the system dropped:
    # the "revoked by no one, a result that never comes".
    return [t for t, s in states.items() if s not in READY_STATES or s == REVOKED]


def duplicated_tasks(starts: Mapping[str, int]) -> list[str]:
    """Task ids whose body started more than once (CatalogTask's own count)."""
    return [t for t, n in starts.items() if n > 1]


def count_state(states: Mapping[str, str], state: str) -> int:
    """How many tasks ended in `state`."""
    return sum(1 for s in states.values() if s == state)


@dataclass(frozen=True)
class CaseResult:
    """One row of the table: a disruption and what became of its tasks."""

    case: str
    tasks: int
    completed: int
    lost: int
    duplicated: int
    note: str = ""
    violations: tuple[str, ...] = ()  # e.g. a workflow status that went backwards

    @property
    def held(self) -> bool:
        """Nothing lost, every task completed, nothing inconsistent."""
        return self.lost == 0 and self.completed == self.tasks and not self.violations


def tally(
    case: str,
    states: Mapping[str, str],
    starts: Mapping[str, int],
    note: str = "",
    violations: Sequence[str] = (),
) -> CaseResult:
    """The row for `case` from each task's last state and its number of body starts."""
    failed = count_state(states, FAILURE)
    notes = [note] if note else []
    if failed:
        notes.append(f"{failed} FAILURE")  # final, so not lost, but not completed either
    notes += [f"INCONSISTENT: {v}" for v in violations]
    return CaseResult(
        case=case,
        tasks=len(states),
        completed=count_state(states, SUCCESS),
        lost=len(lost_tasks(states)),
        duplicated=len(duplicated_tasks({t: starts.get(t, 0) for t in states})),
        note="; ".join(notes),
        violations=tuple(violations),
    )


COLUMNS = ("case", "tasks", "completed", "lost", "duplicated", "note")


def render_table(rows: Iterable[CaseResult]) -> str:
    """A Markdown table of the rows, one line per case."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS[1:-1]) + " | --- |",
    ]
    lines += [
        f"| {r.case} | {r.tasks} | {r.completed} | {r.lost} | {r.duplicated} | {r.note} |"
        for r in rows
    ]
    return "\n".join(lines)
