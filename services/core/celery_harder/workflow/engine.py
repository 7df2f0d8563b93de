"""Submit, follow and cancel workflows: the spec, canvas, record and status wired to Redis."""

import dataclasses
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from celery_harder import keys
from celery_harder.publish_batch import batched_sends
from celery_harder.results import READY_STATES, TaskStatus, describe_meta
from celery_harder.task_client import REDIS_ERRORS, BrokerUnavailable, TaskClient
from celery_harder.workflow.compiler import Leaf, compile_canvas, workflow_leaves
from celery_harder.workflow.observer import (
    NullObserver,
    WorkflowObserver,
    duration_seconds,
    outcome_of,
)
from celery_harder.workflow.record import WorkflowRecord, now_iso, record_key
from celery_harder.workflow.spec import Limits, Node, parse_workflow
from celery_harder.workflow.status import (
    REASON_CANCELLED,
    REASON_TIMEOUT,
    WorkflowStatus,
    aggregate,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """A dispatched workflow: its id, its leaves, and whether this call sent it."""

    id: str
    leaves: list[Leaf]
    dispatched_now: bool


@dataclass(frozen=True)
class Planned:
    """A validated workflow not yet sent: its id, spec, tree and leaves."""

    id: str
    spec: Any
    tree: Node
    leaves: list[Leaf]


class WorkflowEngine:
    """Workflows over one TaskClient; every method is safe to call from any process.

    `observer` hears of each workflow this process dispatched and of each one it was
    the first to see finished (see celery_harder.workflow.observer), so that metrics
    count every workflow once however many API and operator processes read it.
    """

    def __init__(self, client: TaskClient, observer: WorkflowObserver | None = None) -> None:
        self.client = client
        self.settings = client.settings
        self.redis = client.results
        self.observer: WorkflowObserver = observer or NullObserver()

    def _started(self) -> None:
        try:
            self.observer.on_started()
        except Exception:  # an observer never breaks a dispatch
            log.exception("workflow observer failed (started)")

    def _finished(self, status: WorkflowStatus) -> None:
        try:
            seconds = duration_seconds(status.created_at, status.finished_at)
            self.observer.on_finished(outcome_of(status), seconds)
        except Exception:  # nor a status read
            log.exception("workflow observer failed (finished)")

    def limits(self) -> Limits:
        """The configured bounds on a workflow's size."""
        s = self.settings
        return Limits(s.workflow_max_leaves, s.workflow_max_depth, s.workflow_max_argument_bytes)

    def plan(self, spec: Any, *, workflow_id: str | None = None) -> Planned:
        """Validate a workflow (SpecError) and name its leaves; nothing is sent or stored.

        Leaf task ids follow from the workflow id, so a caller can listen for the
        leaves' results before `dispatch` sends them.
        """
        tree = parse_workflow(spec, self.limits(), queues=self.settings.known_queues)
        wid = workflow_id or str(uuid.uuid4())
        return Planned(wid, spec, tree, workflow_leaves(wid, tree))

    def dispatch(self, planned: Planned, *, timeout_seconds: int | None = None) -> Submitted:
        """Record and send a planned workflow.

        Dispatch is idempotent per id: a record marked dispatched is never sent again,
        so a restarted operator can call this for every resource it sees.
        """
        try:
            return self._dispatch(planned, timeout_seconds)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not dispatch workflow {planned.id}: {exc}") from exc

    def submit(
        self,
        spec: Any,
        *,
        workflow_id: str | None = None,
        timeout_seconds: int | None = None,
    ) -> Submitted:
        """Validate (SpecError), record and dispatch a workflow: `plan`, then `dispatch`."""
        planned = self.plan(spec, workflow_id=workflow_id)
        return self.dispatch(planned, timeout_seconds=timeout_seconds)

    def _dispatch(self, planned: Planned, timeout: int | None) -> Submitted:
        wid, leaves = planned.id, planned.leaves
        key = record_key(wid)
        if not self.redis.hsetnx(key, "id", wid):
            existing = self.load(wid)
            if existing is not None and existing.dispatched_at:
                return Submitted(wid, existing.leaves, dispatched_now=False)
            # An earlier dispatch stopped before sending: the same ids are sent now.
        created = datetime.now(UTC)
        deadline = created + timedelta(seconds=timeout) if timeout else None
        record = WorkflowRecord(
            id=wid,
            spec=planned.spec,
            leaves=leaves,
            created_at=created.isoformat(),
            timeout_seconds=timeout,
            deadline=deadline.isoformat() if deadline else None,
        )
        ttl = self.settings.result_expires
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=cast("dict[Any, Any]", record.to_hash()))
        pipe.expire(key, ttl)
        for leaf in leaves:
            pipe.set(keys.ISSUED + leaf.task_id, 1, ex=ttl)
        if deadline:
            pipe.zadd(keys.WORKFLOW_DEADLINES, {wid: deadline.timestamp()})
        pipe.execute()
        options: dict[str, Any] = {}
        if deadline:
            # Workers drop a leaf received after the deadline, even if nobody cancels it.
            options["expires"] = deadline
        app = self.client.app
        canvas = compile_canvas(app, wid, planned.tree, options, default_queue=self.settings.queue)
        try:
            with batched_sends(app):
                canvas.apply_async()
        except REDIS_ERRORS:
            self.redis.delete(key)
            self.redis.zrem(keys.WORKFLOW_DEADLINES, wid)
            raise
        self.redis.hset(key, "dispatched_at", now_iso())
        self._started()
        return Submitted(wid, leaves, dispatched_now=True)

    def load(self, workflow_id: str) -> WorkflowRecord | None:
        """The stored record, or None for an unknown id."""
        try:
            raw = self.redis.hgetall(record_key(workflow_id))
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(str(exc)) from exc
        return WorkflowRecord.from_hash(raw) if raw and b"spec" in raw else None  # type: ignore[arg-type]

    def leaf_statuses(self, leaves: list[Leaf]) -> tuple[list[TaskStatus], list[str | None]]:
        """Every leaf's status and start time in one pipelined round trip."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.mget([self.client.meta_key(leaf.task_id) for leaf in leaves])
            pipe.mget([keys.STARTED + leaf.task_id for leaf in leaves])
            metas, started = pipe.execute()
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(str(exc)) from exc
        decode = self.client.app.backend.decode
        statuses = [
            describe_meta(leaf.task_id, decode(raw) if raw is not None else None)
            for leaf, raw in zip(leaves, metas, strict=True)
        ]
        return statuses, [s.decode() if s else None for s in started]

    def status(self, workflow_id: str) -> WorkflowStatus | None:
        """Phase, progress, nodes and result; None for an unknown id.

        Two round trips whatever the size: the record, then every leaf at once. A
        workflow past its deadline is timed out here too, if no reaper got to it first.
        """
        record = self.load(workflow_id)
        if record is None:
            return None
        statuses, started = self.leaf_statuses(record.leaves)
        status = aggregate(
            record.view(), statuses, started, self.settings.workflow_result_preview_bytes
        )
        if not status.finished and _past(record.deadline):
            return self._cancel(record, statuses, terminate=True, reason=REASON_TIMEOUT)
        if status.finished and not record.finished_at:
            finished_at = now_iso()
            # One winner across every process: it alone tells its observer.
            won = self.redis.hsetnx(record_key(workflow_id), "finished_at", finished_at)
            if not won:
                stored = self.redis.hget(record_key(workflow_id), "finished_at")
                finished_at = stored.decode() if isinstance(stored, bytes) else finished_at
            status = dataclasses.replace(status, finished_at=finished_at)
            if won:
                self._finished(status)
        return status

    def cancel(
        self, workflow_id: str, *, terminate: bool = False, reason: str = REASON_CANCELLED
    ) -> WorkflowStatus | None:
        """Revoke every unfinished leaf; running ones are killed only with `terminate`."""
        record = self.load(workflow_id)
        if record is None:
            return None
        statuses, started = self.leaf_statuses(record.leaves)
        current = aggregate(record.view(), statuses, started)
        if current.finished:
            return self.status(workflow_id)
        return self._cancel(record, statuses, terminate=terminate, reason=reason)

    def _cancel(
        self, record: WorkflowRecord, statuses: list[TaskStatus], *, terminate: bool, reason: str
    ) -> WorkflowStatus:
        unfinished = [s.task_id for s in statuses if s.state not in READY_STATES]
        key = record_key(record.id)
        ttl = self.settings.result_expires
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hsetnx(key, "cancel_reason", reason)
            pipe.hsetnx(key, "cancelled_at", now_iso())
            pipe.hsetnx(key, "finished_at", now_iso())
            for task_id in unfinished:
                pipe.set(keys.REVOKED + task_id, 1, ex=ttl)
            pipe.zrem(keys.WORKFLOW_DEADLINES, record.id)
            replies = pipe.execute()
            if unfinished:
                self.client.app.control.revoke(unfinished, terminate=terminate, signal="SIGTERM")
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(str(exc)) from exc
        # The status read below finds finished_at set and tells nobody: this HSETNX did.
        won = bool(replies[2])
        status = self.status(record.id)
        assert status is not None
        if won:
            self._finished(status)
        return status

    def enforce_deadlines(self) -> list[str]:
        """Time out every workflow whose deadline passed; the ids it timed out."""
        try:
            due = self.redis.zrangebyscore(
                keys.WORKFLOW_DEADLINES, "-inf", datetime.now(UTC).timestamp()
            )
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(str(exc)) from exc
        timed_out = []
        for raw in due:
            wid = raw.decode() if isinstance(raw, bytes) else str(raw)
            status = self.cancel(wid, terminate=True, reason=REASON_TIMEOUT)
            # Finished in time, timed out now, or expired: either way it is done with.
            self.redis.zrem(keys.WORKFLOW_DEADLINES, wid)
            if status is not None and status.reason == REASON_TIMEOUT:
                timed_out.append(wid)
        return timed_out


def _past(deadline: str | None) -> bool:
    return deadline is not None and datetime.fromisoformat(deadline) <= datetime.now(UTC)


def status_document(status: WorkflowStatus) -> dict[str, Mapping[str, Any] | Any]:
    """A workflow status as JSON-ready data (the API's body, the SSE event's data)."""
    return {
        "id": status.id,
        "phase": status.phase,
        "reason": status.reason,
        "message": status.message,
        "progress": status.progress,
        "counts": dict(status.counts),
        "result": status.result,
        "failedNode": status.failed_node,
        "createdAt": status.created_at,
        "startedAt": status.started_at,
        "finishedAt": status.finished_at,
        "deadline": status.deadline,
        "nodes": [
            {
                "path": n.path,
                "task": n.task,
                "taskId": n.task_id,
                "state": n.state,
                "phase": n.phase,
                "result": n.result,
                "error": n.error,
                "progress": n.progress,
                "startedAt": n.started_at,
                "finishedAt": n.finished_at,
            }
            for n in status.nodes
        ],
    }
