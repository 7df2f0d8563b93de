"""Pure aggregation of leaf states into a workflow's phase, progress, nodes and result."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery_harder import results
from celery_harder.results import TaskStatus
from celery_harder.workflow.compiler import Leaf
from celery_harder.workflow.spec import ChainNode, ChordNode, GroupNode, Node, TaskNode

PENDING, RUNNING, SUCCEEDED = "Pending", "Running", "Succeeded"
FAILED, CANCELLED, SKIPPED = "Failed", "Cancelled", "Skipped"
NODE_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, SKIPPED)
FINAL_PHASES = frozenset({SUCCEEDED, FAILED, CANCELLED})
REASON_TIMEOUT = "Timeout"
REASON_CANCELLED = "Cancelled"

_PHASE_OF_STATE = {
    results.SUCCESS: SUCCEEDED,
    results.FAILURE: FAILED,
    results.REVOKED: CANCELLED,
    results.PENDING: PENDING,
}


@dataclass(frozen=True)
class NodeStatus:
    """One leaf as a workflow reports it."""

    path: str
    task: str
    task_id: str
    state: str
    phase: str
    result: Any = None
    error: dict[str, str] | None = None
    progress: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True)
class WorkflowStatus:
    """A workflow's phase, why, how far, each node, and the final result."""

    id: str
    phase: str
    reason: str
    message: str
    counts: Mapping[str, int]
    nodes: Sequence[NodeStatus]
    result: Any = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    deadline: str | None = None
    failed_node: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> str:
        """`done/total`, done being the leaves that succeeded."""
        return f"{self.counts['succeeded']}/{self.counts['total']}"

    @property
    def finished(self) -> bool:
        return self.phase in FINAL_PHASES


def preview(value: Any, limit: int) -> Any:
    """`value` itself if its JSON fits in `limit` bytes, else a cut preview of it."""
    text = json.dumps(value, default=str)
    if len(text) <= limit:
        return value
    return {"truncated": True, "bytes": len(text), "preview": text[:limit]}


def upstream_of(node: Node) -> dict[str, list[str]]:
    """For each leaf path, the leaf paths whose results it waits for."""
    found: dict[str, list[str]] = {}

    def walk(n: Node, upstream: list[str]) -> list[str]:
        """Record leaves under `n`; return the leaves whose results leave `n`."""
        if isinstance(n, TaskNode):
            found[n.path] = upstream
            return [n.path]
        if isinstance(n, ChainNode):
            exits = upstream
            for step in n.steps:
                exits = walk(step, exits)
            return exits
        if isinstance(n, GroupNode):
            return [leaf for m in n.members for leaf in walk(m, upstream)]
        assert isinstance(n, ChordNode)
        header_exits = [leaf for h in n.header for leaf in walk(h, upstream)]
        return walk(n.body, header_exits)

    walk(node, [])
    return found


def final_result(node: Node, by_path: Mapping[str, Any]) -> Any:
    """The workflow's result as Celery would return it: last step, list for a group."""
    if isinstance(node, TaskNode):
        return by_path.get(node.path)
    if isinstance(node, ChainNode):
        return final_result(node.steps[-1], by_path)
    if isinstance(node, GroupNode):
        return [final_result(m, by_path) for m in node.members]
    assert isinstance(node, ChordNode)
    return final_result(node.body, by_path)


def node_phase(status: TaskStatus) -> str:
    """A leaf's phase from its Celery state (STARTED, PROGRESS, RETRY: Running)."""
    return _PHASE_OF_STATE.get(status.state, RUNNING)


@dataclass(frozen=True)
class RecordView:
    """What aggregation needs of a workflow record."""

    id: str
    tree: Node
    leaves: Sequence[Leaf]
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    deadline: str | None = None
    cancel_reason: str | None = None
    timeout_seconds: int | None = None


def aggregate(
    record: RecordView,
    statuses: Sequence[TaskStatus],
    started: Sequence[str | None],
    preview_bytes: int = 1024,
) -> WorkflowStatus:
    """Phase, counts, nodes and result from every leaf's status, in leaf order."""
    upstream = upstream_of(record.tree)
    phases: dict[str, str] = {}
    nodes: list[NodeStatus] = []
    for leaf, status, started_at in zip(record.leaves, statuses, started, strict=True):
        phase = node_phase(status)
        blocked = any(phases.get(u) in (FAILED, CANCELLED, SKIPPED) for u in upstream[leaf.path])
        if phase == PENDING and record.cancel_reason:
            phase = CANCELLED
        elif blocked and started_at is None and phase in (PENDING, FAILED):
            # Celery stores its predecessor's error for a chain step or chord body that
            # never ran; it did not fail itself, it can no longer run.
            phase = SKIPPED
        phases[leaf.path] = phase
        error = (
            {"type": status.error.type, "message": status.error.message} if status.error else None
        )
        nodes.append(
            NodeStatus(
                path=leaf.path,
                task=leaf.task,
                task_id=leaf.task_id,
                state=status.state,
                phase=phase,
                result=preview(status.result, preview_bytes) if phase == SUCCEEDED else None,
                error=error,
                progress=status.progress,
                started_at=started_at,
                finished_at=status.date_done if phase in (SUCCEEDED, FAILED, CANCELLED) else None,
            )
        )
    # Lower-case keys: the same counts object lands in the TaskWorkflow status.
    counts = {p.lower(): 0 for p in NODE_PHASES}
    for phase in phases.values():
        counts[phase.lower()] += 1
    counts["total"] = len(nodes)
    first_failure = next((n for n in nodes if n.phase == FAILED), None)
    still_moving = counts["pending"] + counts["running"] > 0
    result = None
    if record.cancel_reason == REASON_TIMEOUT:
        phase, reason = FAILED, REASON_TIMEOUT
        message = f"timed out after {record.timeout_seconds}s"
    elif record.cancel_reason:
        phase, reason, message = CANCELLED, REASON_CANCELLED, "cancelled"
    elif first_failure is not None:
        phase = RUNNING if still_moving else FAILED
        reason = "Running" if still_moving else "Failed"
        err = first_failure.error or {"type": "Error", "message": ""}
        message = (
            f"{first_failure.path} ({first_failure.task}) failed: {err['type']}: {err['message']}"
        )
    elif counts["succeeded"] == counts["total"]:
        phase, reason, message = SUCCEEDED, "Succeeded", "all tasks succeeded"
        by_path = {n.path: s.result for n, s in zip(nodes, statuses, strict=True)}
        result = preview(final_result(record.tree, by_path), preview_bytes * 64)
    elif counts["running"] or counts["succeeded"]:
        phase, reason, message = RUNNING, "Running", f"{counts['running']} running"
    else:
        phase, reason, message = PENDING, "Pending", "waiting for a worker"
    return WorkflowStatus(
        id=record.id,
        phase=phase,
        reason=reason,
        message=message,
        counts=counts,
        nodes=nodes,
        result=result,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        deadline=record.deadline,
        failed_node=first_failure.path if first_failure else None,
    )
