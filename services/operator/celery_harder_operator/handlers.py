"""kopf handlers: they wire TaskWorkflow events to the workflow engine and hold no logic.

Run with `kopf run --standalone --all-namespaces -m celery_harder_operator.handlers`.
Every handler returns nothing, so no handler result is ever written into `.status`.
The create handler and the sync timer are async: they wait in the event loop for their
workflow's results (follow.py) and call Redis in a thread. So is the phase gauge's
event handler, which only updates memory. The others are synchronous (kopf runs them
in a thread).
"""

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import kopf

from celery_harder.settings import get_settings
from celery_harder.task_client import BrokerUnavailable, create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder.workflow.spec import SpecError
from celery_harder.workflow.status import FINAL_PHASES, SKIPPED, WorkflowStatus

# Importing these registers their handlers: CronTaskWorkflows, the TTL daemon, and
# the follower that wakes the sync timer when a leaf's result is published.
from celery_harder_operator import cron_handlers, follow, ttl  # noqa: F401
from celery_harder_operator import metrics as om
from celery_harder_operator import status as st
from celery_harder_operator.kopf_state import PhaseDiffBaseStorage, ProgressAnnotations
from celery_harder_operator.metrics import METRICS, instrumented
from celery_harder_operator.resource import (
    ANNOTATION_PREFIX,
    FINALIZER,
    GROUP,
    PLURAL,
    SHUTDOWN_TERMINATE,
    VERSION,
    workflow_id,
)

RETRY_DELAY = 5.0
LEAF_DONE = (*FINAL_PHASES, SKIPPED)


@lru_cache(maxsize=1)
def engine() -> WorkflowEngine:
    """The process's workflow engine; its observer counts the workflows it sees finish."""
    return WorkflowEngine(create_task_client(get_settings()), observer=METRICS.workflows)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's state under the project's prefix; post only our own Events; serve /metrics."""
    settings.persistence.progress_storage = ProgressAnnotations(prefix=ANNOTATION_PREFIX)
    # No handler reacts to updates: the phase dispatch writes marks a resource handled,
    # instead of a copy of its spec in an annotation written with a PATCH of its own.
    settings.persistence.diffbase_storage = PhaseDiffBaseStorage()
    settings.persistence.finalizer = FINALIZER
    # A timer that deletes its own resource (TTL) is still running when the deletion
    # arrives; kopf waits for it before releasing the finalizer. Recheck every second,
    # not every minute, so the resource goes as soon as the timer returns.
    settings.background.cancellation_polling = 1.0
    settings.background.instant_exit_timeout = 0.1
    # kopf's own "handler succeeded" Events are noise; ours go out with kopf.event().
    settings.posting.level = logging.WARNING
    # Handlers wait on Redis, not on the CPU: the default pool (cores + 4 threads)
    # queued 100 resources' dispatches behind one another.
    settings.execution.max_workers = follow.THREADS
    config = get_settings()
    memo["stop_metrics"] = om.serve(config.operator_metrics_port, config.operator_metrics_host)


@kopf.on.cleanup()
def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
    """Close the /metrics server on the way out."""
    stop = memo.get("stop_metrics")
    if stop is not None:
        stop()


# Async: kopf runs a sync handler in a thread, a hop for what is a dictionary update.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def track_phase(type: str | None, uid: str, status: kopf.Status, **_: Any) -> None:
    """Keep the resources-by-phase gauge from every watch event (DELETED forgets)."""
    METRICS.resources.apply(om.TASKWORKFLOW, type, uid, om.taskworkflow_phase(status))


def publish(body: kopf.Body, patch: kopf.Patch, status: kopf.Status, new: dict[str, Any]) -> None:
    """Patch the status fields that changed and post an Event when the phase ends."""
    changes = st.status_changes(status, new)
    if changes:
        patch.status.update(changes)
    transition = st.event_for_transition(status.get("phase"), new)
    if transition:
        kind, reason = transition
        kopf.event(body, type=kind, reason=reason, message=new.get("message", ""))


def engine_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the engine; an unreachable Redis is retried by kopf, never a crash loop."""
    try:
        return fn(*args, **kwargs)
    except BrokerUnavailable as exc:
        raise kopf.TemporaryError(f"{what}: {exc}", delay=RETRY_DELAY) from exc


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@instrumented("dispatch")
async def dispatch(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    uid: str,
    **_: Any,
) -> None:
    """Validate, listen for the leaves, dispatch, let a small run end, write the status.

    On resume the engine finds the run and sends nothing, and the status is read at once.
    """
    if status.get("phase") in FINAL_PHASES:
        return
    generation = int(meta.get("generation", 1))
    try:
        # In the event loop: parsing is pure, a fraction of a millisecond for a small
        # workflow (some 30 ms at the 1,000-leaf limit), cheaper than a thread's hop.
        planned = engine().plan(dict(spec)["workflow"], workflow_id=workflow_id(uid))
    except SpecError as exc:
        new = st.validation_failed_status(str(exc), generation, status)
        patch.status.update(st.status_changes(status, new))
        kopf.event(body, type="Warning", reason=st.REASON_VALIDATION, message=new["message"])
        return
    await follow.listen(planned.id, result_channels(leaf.task_id for leaf in planned.leaves))
    try:
        submitted = await asyncio.to_thread(
            engine_call, "dispatch", engine().dispatch, planned,
            timeout_seconds=spec.get("timeoutSeconds"),
        )  # fmt: skip
    except kopf.TemporaryError:
        await follow.forget(planned.id)  # kopf retries the handler, which listens again
        raise
    if submitted.dispatched_now:
        latency = om.dispatch_latency(meta.get("creationTimestamp"), datetime.now(UTC))
        if latency is not None:
            METRICS.dispatch_latency.observe(latency)
    reason = "Dispatched" if submitted.dispatched_now else "Resumed"
    kopf.event(
        body, type="Normal", reason=reason,
        message=f"{len(submitted.leaves)} tasks in workflow {submitted.id}",
    )  # fmt: skip
    await follow.settle(submitted.id, follow.FIRST_READ_GRACE if submitted.dispatched_now else 0)
    current = await asyncio.to_thread(engine_call, "status", engine().status, submitted.id)
    if current is None:
        await follow.forget(submitted.id)
        return
    publish(body, patch, status, build(current, generation, status))
    METRICS.synced()
    await follow.after_read(
        submitted.id, unfinished_channels(current), final=current.phase in FINAL_PHASES
    )


def result_channels(task_ids: Iterable[str]) -> list[bytes]:
    """The channels the result backend publishes these tasks' states on."""
    meta_key = engine().client.meta_key
    return [meta_key(task_id) for task_id in task_ids]


def unfinished_channels(current: WorkflowStatus) -> list[bytes]:
    """The result channels of the leaves still to end (the follower listens to them)."""
    return result_channels(n.task_id for n in current.nodes if n.phase not in LEAF_DONE)


def build(current: WorkflowStatus, generation: int, status: kopf.Status) -> dict[str, Any]:
    return st.build_status(current, generation, status, get_settings().operator_status_max_nodes)


def wants_sync(status: kopf.Status, **_: Any) -> bool:
    """kopf's filter for the sync timer: it runs only while the workflow runs."""
    return st.needs_sync(status)


def read_or_shut_down(spec: kopf.Spec, body: kopf.Body, wid: str) -> WorkflowStatus | None:
    """The engine status; first the shutdown the spec asks for, if any."""
    shutdown = spec.get("shutdown")
    if not shutdown:
        return engine_call("status", engine().status, wid)  # type: ignore[no-any-return]
    terminate = shutdown == SHUTDOWN_TERMINATE
    current = engine_call("shutdown", engine().cancel, wid, terminate=terminate)
    kopf.event(body, type="Normal", reason="Shutdown", message=f"shutdown: {shutdown}")
    return current  # type: ignore[no-any-return]


# kopf evaluates `when` on every change of the resource and starts or stops the timer
# to match: it starts once the create handler writes a phase, and stops at the end.
# Each run waits (follow.before_read) until a leaf's result is published or the poll
# interval passes, so the timer reads as results come and at least every interval.
@kopf.timer(GROUP, VERSION, PLURAL, interval=follow.TICK, when=wants_sync)
@instrumented("sync")
async def sync(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    uid: str,
    **kwargs: Any,
) -> None:
    """Follow a running workflow; shut it down when asked."""
    stopped: kopf.DaemonStopped = kwargs["stopped"]  # timers get it too (TimerFn omits it)
    wid = workflow_id(uid)
    if not await follow.before_read(wid, get_settings().operator_poll_interval, stopped):
        return
    current = await asyncio.to_thread(read_or_shut_down, spec, body, wid)
    if current is None:
        new = dict(status, phase="Failed", message=f"workflow {wid} is gone from Redis")
        publish(body, patch, status, new)
        METRICS.synced()
        await follow.after_read(wid, (), final=True)
        return
    publish(body, patch, status, build(current, int(meta.get("generation", 1)), status))
    METRICS.synced()
    await follow.after_read(wid, unfinished_channels(current), final=current.phase in FINAL_PHASES)


@kopf.on.delete(GROUP, VERSION, PLURAL)
@instrumented("cancel_on_delete")
def cancel_on_delete(status: kopf.Status, body: kopf.Body, uid: str, **_: Any) -> None:
    """Deleting a running TaskWorkflow cancels its run (running tasks are terminated)."""
    if status.get("phase") in FINAL_PHASES or not status.get("workflowId"):
        return
    engine_call("cancel", engine().cancel, workflow_id(uid), terminate=True)
