"""Pure functions from engine status to the TaskWorkflow's `.status`, and what to patch."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from celery_harder.workflow.status import (
    CANCELLED,
    FAILED,
    FINAL_PHASES,
    PENDING,
    RUNNING,
    SUCCEEDED,
    NodeStatus,
    WorkflowStatus,
    preview,
)

MESSAGE_MAX = 1024
NODE_MESSAGE_MAX = 256
RESULT_MAX_BYTES = 4096
REASON_VALIDATION = "ValidationFailed"
ZERO_COUNTS = {
    "total": 0, "pending": 0, "running": 0, "succeeded": 0,
    "failed": 0, "cancelled": 0, "skipped": 0,
}  # fmt: skip
# Nodes worth listing first when the list must be cut: what went wrong, what runs.
_NODE_PRIORITY = {FAILED: 0, RUNNING: 1, CANCELLED: 2, PENDING: 3, SUCCEEDED: 4}


def rfc3339(value: str | None) -> str | None:
    """An ISO timestamp as Kubernetes writes them: UTC, seconds, trailing Z."""
    if not value:
        return None
    moment = datetime.fromisoformat(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cut(text: str, limit: int) -> str:
    """`text` shortened to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status changes."""
    before = next((c for c in previous if c.get("type") == kind), None)
    moved = before is None or before.get("status") != status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": cut(message, MESSAGE_MAX),
        "lastTransitionTime": now if moved else before["lastTransitionTime"],  # type: ignore[index]
        "observedGeneration": generation,
    }


def succeeded_condition_status(phase: str) -> str:
    """Tekton's convention: Unknown while running, True or False at the end."""
    if phase == SUCCEEDED:
        return "True"
    return "False" if phase in FINAL_PHASES else "Unknown"


def node_entry(node: NodeStatus) -> dict[str, Any]:
    """One node as the status lists it: short, never a result."""
    entry: dict[str, Any] = {
        "path": node.path,
        "task": node.task,
        "taskId": node.task_id,
        "phase": node.phase,
    }
    if node.error:
        entry["message"] = cut(f"{node.error['type']}: {node.error['message']}", NODE_MESSAGE_MAX)
    return entry


def bounded_nodes(nodes: Sequence[NodeStatus], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """At most `limit` nodes, failed and running first, listed in spec order; cut or not."""
    if len(nodes) <= limit:
        return [node_entry(n) for n in nodes], False
    ranked = sorted(range(len(nodes)), key=lambda i: (_NODE_PRIORITY.get(nodes[i].phase, 5), i))
    keep = sorted(ranked[:limit])
    return [node_entry(nodes[i]) for i in keep], True


def build_status(
    ws: WorkflowStatus,
    generation: int,
    previous: Mapping[str, Any],
    max_nodes: int,
    now: str | None = None,
) -> dict[str, Any]:
    """The whole `.status` for an engine status; bounded whatever the workflow's size."""
    now = now or now_rfc3339()
    conditions = previous.get("conditions", [])
    nodes, truncated = bounded_nodes(ws.nodes, max_nodes)
    status: dict[str, Any] = {
        "phase": ws.phase,
        "progress": ws.progress,
        "workflowId": ws.id,
        "message": cut(ws.message, MESSAGE_MAX),
        "observedGeneration": generation,
        "counts": dict(ws.counts),
        "nodes": nodes,
        "nodesTruncated": truncated,
        "conditions": [
            condition(
                "Accepted",
                "True",
                "Dispatched",
                "workflow dispatched to Celery",
                generation,
                conditions,
                now,
            ),
            condition(
                "Succeeded",
                succeeded_condition_status(ws.phase),
                ws.reason,
                ws.message,
                generation,
                conditions,
                now,
            ),
        ],
    }
    if ws.started_at:
        status["startedAt"] = rfc3339(ws.started_at)
    if ws.finished_at and ws.finished:
        status["finishedAt"] = rfc3339(ws.finished_at)
    if ws.result is not None:
        # The whole result stays readable through the API at GET /workflows/{workflowId}.
        status["result"] = preview(ws.result, RESULT_MAX_BYTES)
    return status


def validation_failed_status(
    message: str, generation: int, previous: Mapping[str, Any], now: str | None = None
) -> dict[str, Any]:
    """Failed / ValidationFailed: nothing was dispatched."""
    now = now or now_rfc3339()
    conditions = previous.get("conditions", [])
    return {
        "phase": FAILED,
        "progress": "0/0",
        "message": cut(message, MESSAGE_MAX),
        "observedGeneration": generation,
        "finishedAt": now,
        "counts": dict(ZERO_COUNTS),
        "nodes": [],
        "nodesTruncated": False,
        "conditions": [
            condition("Accepted", "False", REASON_VALIDATION, message, generation, conditions, now),
            condition(
                "Succeeded", "False", REASON_VALIDATION, message, generation, conditions, now
            ),
        ],
    }


def status_changes(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields that differ: the merge patch to send, maybe empty."""
    return {key: value for key, value in new.items() if previous.get(key) != value}


def needs_sync(status: Mapping[str, Any]) -> bool:
    """Whether the sync timer has work: a dispatched run that has not finished.

    A finished resource needs no timer (a TTL has its own daemon that sleeps until
    the deadline), so 10,000 finished resources cost no wake-ups at all, where a 2 s
    timer on each would cost 5,000 empty ones a second.
    """
    phase = status.get("phase")
    if phase is None:
        return False  # not dispatched yet: the create handler owns it
    return phase not in FINAL_PHASES


def needs_ttl(status: Mapping[str, Any], ttl_seconds: int | None) -> bool:
    """Whether a finished resource has a ttlSecondsAfterFinished to enforce."""
    return (
        ttl_seconds is not None
        and status.get("phase") in FINAL_PHASES
        and bool(status.get("finishedAt"))
    )


def ttl_remaining(status: Mapping[str, Any], ttl_seconds: int | None, now: datetime) -> float:
    """Seconds until a finished resource's TTL runs out (0 or less: now); inf without one."""
    finished = status.get("finishedAt")
    if ttl_seconds is None or not finished or status.get("phase") not in FINAL_PHASES:
        return float("inf")
    ended = datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return ttl_seconds - (now - ended).total_seconds()


def ttl_expired(status: Mapping[str, Any], ttl_seconds: int | None, now: datetime) -> bool:
    """Whether a finished resource's ttlSecondsAfterFinished has run out."""
    return ttl_remaining(status, ttl_seconds, now) <= 0


def event_for_transition(before: str | None, after: Mapping[str, Any]) -> tuple[str, str] | None:
    """(type, reason) of the Event to post when the phase changes, or None."""
    phase = after.get("phase")
    if phase == before or phase not in FINAL_PHASES:
        return None
    reason = next(
        (c["reason"] for c in after.get("conditions", []) if c["type"] == "Succeeded"), phase
    )
    kind = "Normal" if phase == SUCCEEDED else "Warning"
    return kind, {"Timeout": "TimedOut"}.get(reason, reason)
