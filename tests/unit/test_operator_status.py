"""T0: TaskWorkflow status building: conditions, bounded nodes, minimal patches, TTL."""

from datetime import UTC, datetime, timedelta

import pytest

from celery_harder.workflow.status import NodeStatus, WorkflowStatus
from celery_harder_operator.status import (
    bounded_nodes,
    build_status,
    event_for_transition,
    needs_sync,
    needs_ttl,
    status_changes,
    ttl_expired,
    ttl_remaining,
    validation_failed_status,
)

COUNTS = {"total": 3, "pending": 1, "running": 1, "succeeded": 1, "failed": 0,
          "cancelled": 0, "skipped": 0}  # fmt: skip


def node(i: int, phase: str, error: dict | None = None) -> NodeStatus:
    return NodeStatus(f"workflow.group[{i}]", "add", f"id-{i}", "STATE", phase, error=error)


def workflow(phase: str, reason: str, nodes: list[NodeStatus], counts: dict | None = None):
    return WorkflowStatus(
        id="wf", phase=phase, reason=reason, message=f"{phase} message",
        counts=counts or COUNTS, nodes=nodes, result=None,
        started_at="2026-11-24T03:00:00.123456+00:00", finished_at=None,
    )  # fmt: skip


def test_running_status_and_conditions() -> None:
    ws = workflow(
        "Running", "Running", [node(0, "Succeeded"), node(1, "Running"), node(2, "Pending")]
    )
    status = build_status(ws, 1, {}, 100, now="2026-11-24T03:00:01Z")
    assert status["phase"] == "Running" and status["progress"] == "1/3"
    assert status["startedAt"] == "2026-11-24T03:00:00Z" and "finishedAt" not in status
    accepted, succeeded = status["conditions"]
    assert (accepted["type"], accepted["status"], accepted["reason"]) == (
        "Accepted",
        "True",
        "Dispatched",
    )
    assert (succeeded["type"], succeeded["status"], succeeded["reason"]) == (
        "Succeeded",
        "Unknown",
        "Running",
    )
    assert status["workflowId"] == "wf" and status["observedGeneration"] == 1


def test_transition_time_moves_only_when_the_condition_status_moves() -> None:
    first = build_status(workflow("Running", "Running", []), 1, {}, 100, now="T1")
    second = build_status(workflow("Running", "Running", []), 1, first, 100, now="T2")
    assert second["conditions"][1]["lastTransitionTime"] == "T1"
    third = build_status(workflow("Failed", "Failed", []), 1, second, 100, now="T3")
    assert third["conditions"][1]["lastTransitionTime"] == "T3"
    assert third["conditions"][1]["status"] == "False"
    assert third["conditions"][0]["lastTransitionTime"] == "T1"


def test_nodes_are_bounded_with_failures_kept_and_counts_whole() -> None:
    nodes = [node(i, "Succeeded") for i in range(1000)]
    nodes[999] = node(999, "Failed", {"type": "E", "message": "x" * 1000})
    listed, truncated = bounded_nodes(nodes, 100)
    assert truncated and len(listed) == 100
    assert listed[-1]["path"] == "workflow.group[999]"  # the failure survived the cut
    assert len(listed[-1]["message"]) == 256
    assert [n["path"] for n in listed] == sorted(
        (n["path"] for n in listed), key=lambda p: int(p[15:-1])
    )


def test_only_changed_fields_are_patched() -> None:
    ws = workflow("Running", "Running", [node(0, "Running")])
    first = build_status(ws, 1, {}, 100, now="T1")
    assert status_changes(first, build_status(ws, 1, first, 100, now="T2")) == {}
    moved = workflow("Running", "Running", [node(0, "Succeeded")])
    assert set(status_changes(first, build_status(moved, 1, first, 100, now="T2"))) == {"nodes"}


def test_validation_failure() -> None:
    status = validation_failed_status("workflow.chain[1]: unknown task 'nope'", 1, {}, now="T")
    assert status["phase"] == "Failed"
    assert [c["reason"] for c in status["conditions"]] == ["ValidationFailed"] * 2
    assert "workflow.chain[1]" in status["message"]


def test_ttl() -> None:
    finished = {"phase": "Succeeded", "finishedAt": "2026-11-24T03:00:00Z"}
    at = datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)
    assert not ttl_expired(finished, 10, at + timedelta(seconds=9))
    assert ttl_expired(finished, 10, at + timedelta(seconds=10))
    assert not ttl_expired(finished, None, at + timedelta(days=1))
    assert not ttl_expired({"phase": "Running"}, 0, at)


def test_events_on_final_transitions() -> None:
    done = build_status(workflow("Succeeded", "Succeeded", []), 1, {}, 100)
    assert event_for_transition("Running", done) == ("Normal", "Succeeded")
    assert event_for_transition("Succeeded", done) is None
    timed_out = build_status(workflow("Failed", "Timeout", []), 1, {}, 100)
    assert event_for_transition("Running", timed_out) == ("Warning", "TimedOut")


@pytest.mark.parametrize(
    ("phase", "needed"),
    [
        (None, False),  # the create handler has not dispatched it yet
        ("Pending", True),
        ("Running", True),
        ("Succeeded", False),  # finished for good: no timer at all
        ("Failed", False),
        ("Cancelled", False),
    ],
)
def test_the_sync_timer_runs_only_while_the_run_does(phase: str | None, needed: bool) -> None:
    status = {} if phase is None else {"phase": phase}
    assert needs_sync(status) is needed
    # A TTL is the TTL daemon's business, never a reason to keep the sync timer.
    assert needs_sync({**status, "finishedAt": "2026-11-24T03:00:00Z"}) is needed


@pytest.mark.parametrize(
    ("status", "ttl", "needed"),
    [
        ({"phase": "Succeeded", "finishedAt": "2026-11-24T03:00:00Z"}, 60, True),
        ({"phase": "Failed", "finishedAt": "2026-11-24T03:00:00Z"}, 0, True),
        ({"phase": "Succeeded", "finishedAt": "2026-11-24T03:00:00Z"}, None, False),
        ({"phase": "Running"}, 60, False),  # not finished: nothing to count from
        ({}, 60, False),
    ],
)
def test_the_ttl_daemon_runs_only_for_a_finished_resource_with_a_ttl(
    status: dict, ttl: int | None, needed: bool
) -> None:
    assert needs_ttl(status, ttl) is needed


def test_ttl_remaining_counts_down_from_finished_at() -> None:
    finished = {"phase": "Succeeded", "finishedAt": "2026-11-24T03:00:00Z"}
    at = datetime(2026, 11, 24, 3, 0, 0, tzinfo=UTC)
    assert ttl_remaining(finished, 10, at + timedelta(seconds=4)) == 6
    assert ttl_remaining(finished, 10, at + timedelta(seconds=12)) == -2
    assert ttl_remaining(finished, None, at) == float("inf")
    assert ttl_remaining({"phase": "Running"}, 10, at) == float("inf")
