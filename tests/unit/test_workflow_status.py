"""T0: aggregation of leaf states into phase, progress, skipped nodes and result."""

from typing import Any

from celery_harder.results import TaskError, TaskStatus
from celery_harder.workflow.compiler import workflow_leaves
from celery_harder.workflow.spec import parse_workflow
from celery_harder.workflow.status import RecordView, aggregate, preview

CHAIN = {
    "chain": [
        {"task": "add", "args": [1, 1]},
        {"task": "add", "args": [1]},
        {"task": "add", "args": [1]},
    ]
}
CHORD = {
    "chord": {
        "header": [{"task": "add", "args": [i, i]} for i in range(3)],
        "body": {"task": "xsum"},
    }
}


def view(spec: Any, cancel_reason: str | None = None) -> RecordView:
    tree = parse_workflow(spec)
    return RecordView(
        "w", tree, workflow_leaves("w", tree), cancel_reason=cancel_reason, timeout_seconds=5
    )


def states(rv: RecordView, *pairs: tuple[str, Any]) -> list[TaskStatus]:
    out = []
    for leaf, (state, value) in zip(rv.leaves, pairs, strict=True):
        error = value if isinstance(value, TaskError) else None
        out.append(TaskStatus(leaf.task_id, state, result=None if error else value, error=error))
    return out


def run(rv: RecordView, *pairs: tuple[str, Any]):
    return aggregate(rv, states(rv, *pairs), [None] * len(rv.leaves))


def test_pending_running_succeeded() -> None:
    rv = view(CHAIN)
    assert run(rv, ("PENDING", None), ("PENDING", None), ("PENDING", None)).phase == "Pending"
    running = run(rv, ("SUCCESS", 2), ("PROGRESS", None), ("PENDING", None))
    assert (running.phase, running.progress) == ("Running", "1/3")
    done = run(rv, ("SUCCESS", 2), ("SUCCESS", 3), ("SUCCESS", 4))
    assert (done.phase, done.progress, done.result) == ("Succeeded", "3/3", 4)


def test_failure_in_a_chain_skips_later_steps_and_names_the_node() -> None:
    rv = view(CHAIN)
    st = run(rv, ("SUCCESS", 2), ("FAILURE", TaskError("ValueError", "bad")), ("PENDING", None))
    assert st.phase == "Failed" and st.failed_node == "workflow.chain[1]"
    assert "workflow.chain[1] (add) failed: ValueError: bad" in st.message
    assert [n.phase for n in st.nodes] == ["Succeeded", "Failed", "Skipped"]
    assert st.counts == {
        "pending": 0,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "skipped": 1,
        "total": 3,
    }


def test_failed_header_member_skips_the_chord_body_but_siblings_keep_running() -> None:
    rv = view(CHORD)
    err = TaskError("E", "x")
    moving = run(rv, ("FAILURE", err), ("STARTED", None), ("SUCCESS", 4), ("PENDING", None))
    assert moving.phase == "Running" and "failed" in moving.message
    done = run(rv, ("FAILURE", err), ("SUCCESS", 2), ("SUCCESS", 4), ("PENDING", None))
    assert done.phase == "Failed"
    assert done.nodes[-1].phase == "Skipped"


def test_group_and_chord_results() -> None:
    group = view({"group": [{"task": "add", "args": [i, i]} for i in range(3)]})
    assert run(group, ("SUCCESS", 0), ("SUCCESS", 2), ("SUCCESS", 4)).result == [0, 2, 4]
    chord = view(CHORD)
    assert run(chord, ("SUCCESS", 0), ("SUCCESS", 2), ("SUCCESS", 4), ("SUCCESS", 6)).result == 6


def test_cancel_and_timeout() -> None:
    cancelled = run(view(CHAIN, "Cancelled"), ("SUCCESS", 2), ("STARTED", None), ("PENDING", None))
    assert (cancelled.phase, cancelled.reason) == ("Cancelled", "Cancelled")
    assert cancelled.nodes[-1].phase == "Cancelled"
    timed_out = run(view(CHAIN, "Timeout"), ("REVOKED", None), ("PENDING", None), ("PENDING", None))
    assert (timed_out.phase, timed_out.reason) == ("Failed", "Timeout")
    assert "timed out after 5s" in timed_out.message


def test_large_results_are_cut() -> None:
    assert preview([1, 2], 100) == [1, 2]
    cut = preview("x" * 500, 100)
    assert cut["truncated"] is True and len(cut["preview"]) == 100


def test_a_step_celery_marked_failed_without_running_is_skipped() -> None:
    rv = view(CHAIN)
    err = TaskError("ValueError", "bad")
    pairs = [("SUCCESS", 2), ("FAILURE", err), ("FAILURE", err)]
    st = aggregate(rv, states(rv, *pairs), ["t0", "t1", None])
    assert [n.phase for n in st.nodes] == ["Succeeded", "Failed", "Skipped"]
    assert st.phase == "Failed" and st.failed_node == "workflow.chain[1]"
