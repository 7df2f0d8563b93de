"""kopf handlers of CronTaskWorkflow: they wire a timer to the schedule logic and hold none.

`handlers.py` imports this module, so `kopf run -m celery_harder_operator.handlers`
serves both resources. Every decision is taken by `schedule.decide` and
`schedule.runs_to_delete`; here they are carried out: runs created, stopped, deleted.
"""

import urllib.error
from typing import Any

import kopf

from celery_harder.settings import get_settings
from celery_harder_operator import clock, kube
from celery_harder_operator import cron_status as cst
from celery_harder_operator import metrics as om
from celery_harder_operator import schedule as sch
from celery_harder_operator.cron_resource import (
    CRON_PLURAL,
    OWNER_LABEL,
    cron_spec,
    owner_uid,
    run_manifest,
    run_of,
)
from celery_harder_operator.resource import GROUP, PLURAL, SHUTDOWN_TERMINATE, VERSION
from celery_harder_operator.status import status_changes

INTERVAL = get_settings().operator_schedule_interval


# The runs of every CronTaskWorkflow, kept in memory from kopf's watch of TaskWorkflows
# and keyed by the owner's uid: a timer tick reads them without asking the API server,
# and kopf fills the index before any handler runs, so a restarted operator sees every run.
@kopf.index(GROUP, VERSION, PLURAL, labels={OWNER_LABEL: kopf.PRESENT})
def cron_runs(
    meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, sch.Run] | None:
    """Index a TaskWorkflow under the CronTaskWorkflow that controls it."""
    owner = owner_uid(meta)
    return None if owner is None else {owner: run_of(meta, spec, status)}


def api_call(what: str, fn: Any, *args: Any) -> Any:
    """A Kubernetes call; a failure is retried on the next tick, never a crash loop."""
    try:
        return fn(*args)
    except (urllib.error.URLError, OSError) as exc:
        raise kopf.TemporaryError(f"{what}: {exc}", delay=INTERVAL) from exc


def event(body: kopf.Body, reason: str, message: str, warning: bool = False) -> None:
    """An Event on the CronTaskWorkflow, as `kubectl describe ctw` shows them."""
    kopf.event(body, type="Warning" if warning else "Normal", reason=reason, message=message)


def create_run(
    body: kopf.Body, namespace: str, manifest: dict[str, Any], uid: str
) -> sch.Run | None:
    """Create the run; a name already taken by this owner's run counts as created."""
    kopf.append_owner_reference(manifest, owner=body)  # controller, blockOwnerDeletion
    name = manifest["metadata"]["name"]
    created = api_call("create run", kube.create_taskworkflow, namespace, manifest)
    if created is None:
        # A restart between the create and the status patch: the run is there already.
        created = api_call("read run", kube.get_taskworkflow, namespace, name)
        if created is None or owner_uid(created.get("metadata", {})) != uid:
            event(body, "RunNameTaken", f"{name} exists and is no run of this owner", True)
            return None
        event(body, "RunExists", f"{name} was created before")
    else:
        event(body, "RunCreated", f"created {name}")
    return run_of(created["metadata"], created.get("spec", {}), created.get("status", {}))


def start(
    body: kopf.Body, namespace: str, uid: str, decision: sch.Decision, runs: list[sch.Run]
) -> tuple[sch.Decision, list[sch.Run]]:
    """Stop what Replace replaces, create the run; the decision as it turned out."""
    assert decision.scheduled is not None
    for victim in decision.stop:
        patch = {"spec": {"shutdown": SHUTDOWN_TERMINATE}}
        api_call("stop run", kube.patch_taskworkflow, namespace, victim, patch)
        event(body, "RunReplaced", f"stopping {victim}")
    template = dict(body.get("spec", {})).get("workflowTemplate", {})
    manifest = run_manifest(body.metadata.name or "", template, decision.scheduled)
    run = create_run(body, namespace, manifest, uid)
    if run is None:
        missed = decision.missed + 1
        missed_run = sch.Decision(
            "miss", decision.scheduled, missed, decision.scheduled, reason="its name is taken"
        )
        return missed_run, runs
    return decision, [r for r in runs if r.name != run.name] + [run]


def prune(body: kopf.Body, namespace: str, doomed: list[str]) -> None:
    """Delete the finished runs beyond the history limits."""
    for victim in doomed:
        api_call("delete run", kube.delete_taskworkflow, namespace, victim)
        event(body, "RunDeleted", f"deleted {victim} (history limit)")


@kopf.on.event(GROUP, VERSION, CRON_PLURAL)
def track_cron_phase(type: str | None, uid: str, status: kopf.Status, **_: Any) -> None:
    """Keep the resources-by-phase gauge from every watch event (DELETED forgets)."""
    om.METRICS.resources.apply(om.CRONTASKWORKFLOW, type, uid, om.cron_phase(status))


@kopf.timer(GROUP, VERSION, CRON_PLURAL, interval=INTERVAL, backoff=INTERVAL)
@om.instrumented("cron_evaluate")
def evaluate(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    uid: str,
    name: str,
    namespace: str | None,
    **kwargs: Any,
) -> None:
    """One look at the schedule: start, stop and delete runs as the decision says."""
    index: kopf.Index[str, sch.Run] = kwargs["cron_runs"]  # kopf passes indices by name
    namespace = namespace or "default"
    now = clock.now()
    cron = cron_spec(spec)
    generation = int(meta.get("generation", 1))
    try:
        schedule = sch.parse_schedule(cron.schedule, cron.time_zone, now)
    except sch.ScheduleError as exc:
        if cst.became_invalid(status, str(exc)):
            event(body, cst.REASON_VALIDATION, str(exc), warning=True)
        new = cst.invalid_status(status, str(exc), generation, now)
        patch.status.update(status_changes(status, new))
        return
    runs = list(index.get(uid, []))
    last_schedule = sch.parse_time(status.get("lastScheduleTime"))
    cursor = sch.evaluated_through(
        last_schedule,
        sch.parse_time(status.get("lastMissedTime")),
        sch.parse_time(meta["creationTimestamp"]) or now,
    )
    decision = sch.decide(
        schedule, cursor=cursor, now=now, runs=runs, name=name, policy=cron.policy,
        deadline_seconds=cron.deadline_seconds, suspended=cron.suspend,
    )  # fmt: skip
    if decision.action == "start":
        decision, runs = start(body, namespace, uid, decision, runs)
    if decision.action in ("start", "adopt"):
        last_schedule = decision.scheduled
    if decision.missed:
        why = f": {decision.reason}" if decision.action == "miss" and decision.reason else ""
        event(body, "MissedSchedule", f"{decision.missed} scheduled run(s) missed{why}", True)
    doomed = sch.runs_to_delete(runs, cron.successful_limit, cron.failed_limit)
    prune(body, namespace, doomed)
    new = cst.schedule_status(
        status, decision=decision, last_schedule=last_schedule,
        next_time=None if cron.suspend else sch.next_time(schedule, cursor, now),
        runs=[r for r in runs if r.name not in doomed], namespace=namespace,
        generation=generation, now=now,
    )  # fmt: skip
    patch.status.update(status_changes(status, new))
    om.METRICS.synced()
