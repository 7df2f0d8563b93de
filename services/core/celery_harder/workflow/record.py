"""The workflow record kept in Redis beside the results, with the same expiry."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery_harder import keys
from celery_harder.workflow.compiler import Leaf
from celery_harder.workflow.spec import Limits, parse_workflow
from celery_harder.workflow.status import RecordView


def now_iso() -> str:
    """The current UTC time in ISO 8601."""
    return datetime.now(UTC).isoformat()


def record_key(workflow_id: str) -> str:
    return keys.WORKFLOW + workflow_id


@dataclass(frozen=True)
class WorkflowRecord:
    """What is stored for a workflow: spec, leaves, times, deadline, cancel request."""

    id: str
    spec: Any
    leaves: list[Leaf]
    created_at: str
    timeout_seconds: int | None = None
    deadline: str | None = None
    dispatched_at: str | None = None
    finished_at: str | None = None
    cancel_reason: str | None = None
    cancelled_at: str | None = None

    def to_hash(self) -> dict[str, str]:
        """Redis hash fields; absent values are left out."""
        fields: dict[str, Any] = {
            "id": self.id,
            "spec": json.dumps(self.spec),
            "leaves": json.dumps([[lf.path, lf.task, lf.task_id] for lf in self.leaves]),
            "created_at": self.created_at,
            "timeout_seconds": self.timeout_seconds,
            "deadline": self.deadline,
            "dispatched_at": self.dispatched_at,
            "finished_at": self.finished_at,
            "cancel_reason": self.cancel_reason,
            "cancelled_at": self.cancelled_at,
        }
        return {k: str(v) for k, v in fields.items() if v is not None}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> "WorkflowRecord":
        """The record from HGETALL's answer."""
        f = {k.decode(): v.decode() for k, v in raw.items()}
        timeout = f.get("timeout_seconds")
        return cls(
            id=f["id"],
            spec=json.loads(f["spec"]),
            leaves=[Leaf(*item) for item in json.loads(f["leaves"])],
            created_at=f["created_at"],
            timeout_seconds=int(timeout) if timeout else None,
            deadline=f.get("deadline"),
            dispatched_at=f.get("dispatched_at"),
            finished_at=f.get("finished_at"),
            cancel_reason=f.get("cancel_reason"),
            cancelled_at=f.get("cancelled_at"),
        )

    def view(self) -> RecordView:
        """The parts status aggregation reads, with the spec parsed again.

        The stored spec was validated when it was submitted; it is not checked against
        today's catalog again, so a workflow outlives a catalog change.
        """
        tree = parse_workflow(self.spec, Limits(max_leaves=len(self.leaves)), check_calls=False)
        return RecordView(
            id=self.id,
            tree=tree,
            leaves=self.leaves,
            created_at=self.created_at,
            started_at=self.dispatched_at,
            finished_at=self.finished_at,
            deadline=self.deadline,
            cancel_reason=self.cancel_reason,
            timeout_seconds=self.timeout_seconds,
        )
