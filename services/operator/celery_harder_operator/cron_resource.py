"""The CronTaskWorkflow resource: its coordinates, its spec, and the run it makes for a time."""

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery_harder_operator import schedule as sch
from celery_harder_operator.resource import GROUP, KIND, VERSION

CRON_PLURAL = "crontaskworkflows"
CRON_KIND = "CronTaskWorkflow"
API_VERSION = f"{GROUP}/{VERSION}"
# Runs carry their owner's name as a label (`kubectl get tw -l ...`) and their scheduled
# time as an annotation, as CronJob's Jobs do.
OWNER_LABEL = f"{GROUP}/cron-task-workflow"
SCHEDULED_ANNOTATION = f"{GROUP}/scheduled-at"
# CronJob's bound too: the name plus "-" and the minutes since the epoch fit in 63.
NAME_MAX = 52


@dataclass(frozen=True)
class CronSpec:
    """A CronTaskWorkflow's spec with its defaults filled in (the CRD defaults them too)."""

    schedule: str
    time_zone: str
    policy: str
    deadline_seconds: int | None
    suspend: bool
    successful_limit: int
    failed_limit: int


def cron_spec(spec: Mapping[str, Any]) -> CronSpec:
    """Read a spec; a missing field takes the same default as the CRD gives it."""
    deadline = spec.get("startingDeadlineSeconds")
    return CronSpec(
        schedule=str(spec.get("schedule", "")),
        time_zone=str(spec.get("timeZone") or sch.DEFAULT_TIME_ZONE),
        policy=str(spec.get("concurrencyPolicy") or sch.DEFAULT_CONCURRENCY_POLICY),
        deadline_seconds=None if deadline is None else int(deadline),
        suspend=bool(spec.get("suspend", False)),
        successful_limit=int(
            spec.get("successfulRunsHistoryLimit", sch.DEFAULT_SUCCESSFUL_RUNS_HISTORY_LIMIT)
        ),
        failed_limit=int(spec.get("failedRunsHistoryLimit", sch.DEFAULT_FAILED_RUNS_HISTORY_LIMIT)),
    )


def run_manifest(owner: str, template: Mapping[str, Any], scheduled: datetime) -> dict[str, Any]:
    """The TaskWorkflow for one scheduled time (the handler adds the owner reference)."""
    metadata = template.get("metadata") or {}
    labels = {**(metadata.get("labels") or {}), OWNER_LABEL: owner}
    annotations = {
        **(metadata.get("annotations") or {}),
        SCHEDULED_ANNOTATION: sch.format_time(scheduled),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": sch.run_name(owner, scheduled),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }


def owner_uid(meta: Mapping[str, Any]) -> str | None:
    """The uid of the CronTaskWorkflow controlling a TaskWorkflow, if one does."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == CRON_KIND and ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None


def run_of(meta: Mapping[str, Any], spec: Mapping[str, Any], status: Mapping[str, Any]) -> sch.Run:
    """What the schedule logic needs to know of one run."""
    annotations = meta.get("annotations") or {}
    return sch.Run(
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        scheduled=sch.parse_time(annotations.get(SCHEDULED_ANNOTATION)),
        phase=status.get("phase"),
        finished_at=sch.parse_time(status.get("finishedAt")),
        stopping=bool(spec.get("shutdown")),
    )


def active_reference(run: sch.Run, namespace: str) -> dict[str, Any]:
    """An entry of status.active: an object reference, as CronJob lists its Jobs."""
    ref: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": run.name,
        "namespace": namespace,
        "uid": run.uid,
    }
    if run.scheduled:
        ref["scheduledTime"] = sch.format_time(run.scheduled)
    return ref
