"""Generate the TaskWorkflow and CronTaskWorkflow CRDs, the one source of charts/celery-harder/crds/.

    python scripts/gen_crd.py > charts/celery-harder/crds/taskworkflows.celery-harder.io.yaml
    python scripts/gen_crd.py crontaskworkflows \
        > charts/celery-harder/crds/crontaskworkflows.celery-harder.io.yaml

A CronTaskWorkflow's workflowTemplate.spec is the TaskWorkflow spec schema built by the
same function, so the two cannot drift apart. tests/k8s/test_crd.py and
tests/k8s/test_cron_crd.py check that the committed files are this script's output.
"""

import sys

import yaml

MAX_CHILDREN = 1000  # = the operator's default max_leaves; the CEL cost budget allows it with the has()-only rule
NAME_MAX = 253
DEPTH = 3  # levels validated structurally; below that preserve-unknown-fields
# "exactly one of task, chain, group, chord", written with has() only: a list literal
# with filter() costs ~5x more and limits maxItems through the CEL cost budget.
ONE_KIND_RULE = (
    "has(self.task) ? !(has(self.chain) || has(self.group) || has(self.chord)) : "
    "has(self.chain) ? !(has(self.group) || has(self.chord)) : "
    "has(self.group) ? !has(self.chord) : has(self.chord)"
)


def node(level: int) -> dict:
    """Schema for a workflow Node at `level` (1 = spec.workflow)."""
    if level > DEPTH:
        return {
            "type": "object",
            "description": f"A workflow Node nested deeper than {DEPTH} levels: not checked by the API server "
            "(schemas cannot recurse); the operator validates it before running anything.",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    child = node(level + 1)

    def children(what):
        return {
            "type": "array",
            "description": what,
            "minItems": 1,
            "maxItems": MAX_CHILDREN,
            "items": child,
        }

    return {
        "type": "object",
        "description": (
            "A workflow Node: exactly one of task, chain, group or chord. "
            "args, kwargs and options belong to a task node."
        ),
        "properties": {
            "task": {
                "type": "string",
                "minLength": 1,
                "maxLength": NAME_MAX,
                "description": "Registered name of a task in the catalog (e.g. add, xsum, documents.analyse).",
            },
            "args": {
                "type": "array",
                "maxItems": 64,
                "description": "Positional arguments (any JSON values). In a chain, the previous result is prepended.",
                "items": {"x-kubernetes-preserve-unknown-fields": True},
            },
            "kwargs": {
                "type": "object",
                "description": "Keyword arguments (free-form).",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "options": {
                "type": "object",
                "description": "Celery call options: priority, time_limit, soft_time_limit, queue (a configured queue; checked by the operator).",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "immutable": {
                "type": "boolean",
                "description": "Keep only this call's own arguments: the previous step's (or the chord header's) result is not passed (Celery's .si()).",
            },
            "chain": children(
                "Nodes run one after another; each result is passed as the first argument of the next call."
            ),
            "group": children("Nodes run in parallel; the result is the list of their results."),
            "chord": {
                "type": "object",
                "description": "A group (header) whose list of results is passed to body.",
                "required": ["header", "body"],
                "properties": {
                    "header": children("Nodes run in parallel."),
                    "body": dict(
                        child,
                        description="Node called with the list of header results."
                        + ("" if level + 1 <= DEPTH else " " + child["description"]),
                    ),
                },
            },
        },
        "x-kubernetes-validations": [
            {
                "rule": ONE_KIND_RULE,
                "message": "a workflow node must have exactly one of task, chain, group, chord",
                "reason": "FieldValueInvalid",
            },
        ],
    }


def workflow_schema(immutable: bool) -> dict:
    """spec.workflow: immutable in a TaskWorkflow, editable in a template (new runs take it)."""
    workflow = node(1)
    checks = f"The API server checks the first {DEPTH} levels; the operator checks the rest."
    if not immutable:
        workflow["description"] = (
            "The workflow each run runs: a Node (task, chain, group or chord). Required; "
            "an edit applies to the runs started after it. " + checks
        )
        return workflow
    workflow["description"] = (
        "The workflow to run: a Node (task, chain, group or chord). Required; immutable "
        "after creation. " + checks
    )
    workflow["x-kubernetes-validations"].append(
        {
            "rule": "self == oldSelf",
            "message": "spec.workflow is immutable; create a new TaskWorkflow instead",
            "reason": "FieldValueForbidden",
        }
    )
    return workflow


def short(n: int, d: str) -> dict:
    return {"type": "string", "maxLength": n, "description": d}


def dt(d: str) -> dict:
    return {"type": "string", "format": "date-time", "description": d}


def cnt(d: str) -> dict:
    return {"type": "integer", "format": "int32", "minimum": 0, "description": d}


def conditions(
    description: str,
    kind: str = "Succeeded",
    reasons: str = "Running, Succeeded, Failed, Cancelled, Timeout",
) -> dict:
    """The standard conditions list (keyed by type), as both resources write it."""
    return {
        "type": "array",
        "description": description,
        "maxItems": 16,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": short(316, f"Condition type, e.g. {kind}."),
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": short(1024, f"CamelCase reason, e.g. {reasons}."),
                "message": short(32768, "Human-readable detail."),
                "lastTransitionTime": dt("When status last changed."),
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            },
        },
    }


status = {
    "type": "object",
    "description": "Observed state, written by the operator through the status subresource.",
    "properties": {
        "phase": {
            "type": "string",
            "enum": ["Pending", "Running", "Succeeded", "Failed", "Cancelled"],
            "description": "Pending, Running, Succeeded, Failed or Cancelled.",
        },
        "progress": short(
            32, 'Succeeded leaf tasks over all leaf tasks, "done/total" (e.g. "3/5").'
        ),
        "workflowId": short(
            253, "Id of the workflow run; GET /workflows/{workflowId} on the API shows all of it."
        ),
        "startedAt": dt("When the workflow was dispatched."),
        "finishedAt": dt("When the workflow reached a final phase."),
        "message": short(
            1024, "Human-readable detail of the current phase (e.g. the first error)."
        ),
        "observedGeneration": {
            "type": "integer",
            "format": "int64",
            "description": "metadata.generation this status was computed for.",
        },
        "result": {
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "Result of the workflow (the last node's return value), when it succeeded.",
        },
        "conditions": conditions(
            "Standard conditions; Succeeded is Unknown while running, True or False at the end."
        ),
        "nodes": {
            "type": "array",
            "description": "Per-leaf state, at most 100 entries (see nodesTruncated).",
            "maxItems": 100,
            "items": {
                "type": "object",
                "properties": {
                    "path": short(
                        256, 'Position of the leaf in spec.workflow, e.g. "chain[1].group[0]".'
                    ),
                    "task": short(NAME_MAX, "Task name."),
                    "taskId": short(253, "Celery task id."),
                    "phase": short(64, "State of this leaf."),
                    "message": short(1024, "Detail, e.g. the error."),
                },
            },
        },
        "nodesTruncated": {
            "type": "boolean",
            "description": "True when nodes lists only part of the leaves.",
        },
        "counts": {
            "type": "object",
            "description": "Leaf tasks by state.",
            "properties": {
                k: cnt(f"Leaf tasks {k}." if k != "total" else "All leaf tasks.")
                for k in [
                    "total",
                    "pending",
                    "running",
                    "succeeded",
                    "failed",
                    "cancelled",
                    "skipped",
                ]
            },
        },
    },
}


def taskworkflow_spec(immutable: bool = True) -> dict:
    """A TaskWorkflow's spec schema; a CronTaskWorkflow's template holds the same one."""
    return {
        "type": "object",
        "description": "What to run.",
        "required": ["workflow"],
        "properties": {
            "workflow": workflow_schema(immutable),
            "timeoutSeconds": {
                "type": "integer",
                "format": "int64",
                "minimum": 1,
                "description": "Fail the workflow (and cancel its unfinished leaves) after this many seconds. Optional.",
            },
            "ttlSecondsAfterFinished": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "Delete the resource this many seconds after it finished. Optional; kept forever when unset.",
            },
            # Argo's convention: Celery cannot pause a canvas and resume it later, so a
            # suspend flag would promise what it cannot keep; shutdown says what happens.
            "shutdown": {
                "type": "string",
                "enum": ["Stop", "Terminate"],
                "description": "Stop a running workflow: Stop lets running tasks finish and starts "
                "nothing more; Terminate also kills running tasks. Ends as Cancelled.",
            },
        },
    }


def envelope(plural: str) -> dict:
    """apiVersion, kind and metadata of one of the project's CRDs."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.celery-harder.io",
            "labels": {
                "app.kubernetes.io/name": "celery-harder",
                "app.kubernetes.io/component": "crd",
            },
        },
    }


def spec_head(kind: str, plural: str, short: str) -> dict:
    """The group, scope and names every CRD of the project shares the shape of."""
    return {
        "group": "celery-harder.io",
        "scope": "Namespaced",
        "names": {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": plural[:-1],
            "shortNames": [short],
            "categories": ["celery-harder"],
        },
    }


# The one version each CRD serves and stores, with the status subresource.
VERSION_HEAD = {"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}}}

crd = {
    **envelope("taskworkflows"),
    "spec": {
        **spec_head("TaskWorkflow", "taskworkflows", "tw"),
        "versions": [
            {
                **VERSION_HEAD,
                "additionalPrinterColumns": [
                    {
                        "name": "Status",
                        "type": "string",
                        "jsonPath": ".status.phase",
                        "description": "Phase of the workflow.",
                    },
                    {
                        "name": "Progress",
                        "type": "string",
                        "jsonPath": ".status.progress",
                        "description": "Succeeded leaves / all leaves.",
                    },
                    {
                        "name": "Reason",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Succeeded")].reason',
                        "description": "Reason of the Succeeded condition.",
                    },
                    {
                        "name": "Started",
                        "type": "date",
                        "jsonPath": ".status.startedAt",
                        "description": "When it was dispatched.",
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    {
                        "name": "Message",
                        "type": "string",
                        "jsonPath": ".status.message",
                        "priority": 1,
                    },
                    {
                        "name": "Workflow-ID",
                        "type": "string",
                        "jsonPath": ".status.workflowId",
                        "priority": 1,
                    },
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "TaskWorkflow runs a Celery canvas (task, chain, group, chord) and reports its progress in status.",
                        "required": ["spec"],
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": taskworkflow_spec(),
                            "status": status,
                        },
                    }
                },
            }
        ],
    },
}


class D(yaml.SafeDumper):
    def ignore_aliases(self, data):  # write every level out in full: no &anchors / *aliases
        return True


D.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s))
TW_HEADER = (
    "# TaskWorkflow CRD: the one source (Helm installs it from crds/; tests apply it to a real kube-apiserver).\n"
    "# Schemas cannot recurse: spec.workflow is checked structurally for 3 levels of nesting, deeper nodes\n"
    "# are kept as-is (x-kubernetes-preserve-unknown-fields) and validated by the operator.\n"
    "# Every list and string is bounded so that the CEL rules fit the API server's cost budget.\n"
)

# ------------------------------------------------------------ CronTaskWorkflow

CRON_NAME_MAX = 52  # CronJob's bound: the name, "-" and the minutes since the epoch fit in 63
# Label keys and values are short by Kubernetes' rules; a bound keeps the CEL cost low too.
string_map = {
    "type": "object",
    "maxProperties": 64,
    "additionalProperties": {"type": "string", "maxLength": 4096},
}


def int_field(fmt: str, minimum: int, d: str, default: int | None = None) -> dict:
    field = {"type": "integer", "format": fmt, "minimum": minimum, "description": d}
    if default is not None:
        field["default"] = default
    return field


template_spec = taskworkflow_spec(immutable=False)
template_spec["description"] = (
    "The TaskWorkflow spec of every run (the same schema as a TaskWorkflow's spec)."
)
template_spec["x-kubernetes-validations"] = [
    {
        "rule": "!has(self.shutdown)",
        "message": "workflowTemplate.spec.shutdown would stop every run at its start; set it on a run instead",
        "reason": "FieldValueForbidden",
    }
]

cron_spec = {
    "type": "object",
    "description": "When to run, and what.",
    "required": ["schedule", "workflowTemplate"],
    "properties": {
        "schedule": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": 'Cron schedule, five fields (minute hour day-of-month month day-of-week, e.g. "*/5 * * * *") '
            "or @hourly, @daily, @weekly, @monthly, @yearly. Checked by the operator: a bad one sets Ready False "
            "with reason ValidationFailed.",
        },
        "timeZone": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "default": "UTC",
            "description": "IANA time zone the schedule is read in (e.g. Europe/Berlin). Default UTC.",
        },
        "concurrencyPolicy": {
            "type": "string",
            "enum": ["Allow", "Forbid", "Replace"],
            "default": "Allow",
            "description": "When a run is due while another is still running: Allow starts it beside, Forbid "
            "skips it, Replace stops the running one (shutdown: Terminate) and starts the new one.",
        },
        "startingDeadlineSeconds": int_field(
            "int64",
            1,
            "A run that cannot start within this many seconds of its time is counted as missed. "
            "Optional; without it a late run (after downtime, suspension or Forbid) starts however late.",
        ),
        "suspend": {
            "type": "boolean",
            "default": False,
            "description": "True stops new runs; running ones go on. Times that pass meanwhile count as missed "
            "(the latest may start on resume, as with a CronJob).",
        },
        "successfulRunsHistoryLimit": int_field("int32", 0, "Succeeded runs to keep.", 3),
        "failedRunsHistoryLimit": int_field("int32", 0, "Failed or Cancelled runs to keep.", 1),
        "workflowTemplate": {
            "type": "object",
            "description": "The TaskWorkflow each run is made from.",
            "required": ["spec"],
            "properties": {
                "metadata": {
                    "type": "object",
                    "description": "Labels and annotations every run gets.",
                    "properties": {"labels": string_map, "annotations": string_map},
                },
                "spec": template_spec,
            },
        },
    },
}

cron_status = {
    "type": "object",
    "description": "Observed state, written by the operator through the status subresource.",
    "properties": {
        "lastScheduleTime": dt("The scheduled time of the last run started."),
        "lastSuccessfulTime": dt("When the last run that succeeded finished."),
        "lastMissedTime": dt("The last scheduled time that got no run."),
        "nextScheduleTime": dt("The next scheduled time (unset while suspended or invalid)."),
        "missedRuns": {
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "description": "Scheduled times that got no run: downtime, suspension, Forbid, the starting deadline.",
        },
        "active": {
            "type": "array",
            "description": "The runs not finished yet, newest last (at most 100; activeCount counts all).",
            "maxItems": 100,
            "items": {
                "type": "object",
                "properties": {
                    "apiVersion": short(253, "API version of the run."),
                    "kind": short(63, "TaskWorkflow."),
                    "name": short(253, "Name of the run."),
                    "namespace": short(63, "Namespace of the run."),
                    "uid": short(64, "uid of the run."),
                    "scheduledTime": dt("The time the run was scheduled for."),
                },
            },
        },
        "activeCount": cnt("Runs not finished yet."),
        "observedGeneration": {
            "type": "integer",
            "format": "int64",
            "description": "metadata.generation this status was computed for.",
        },
        "conditions": conditions(
            "Standard conditions: Ready is True while runs are scheduled, False when suspended or invalid.",
            "Ready",
            "Scheduled, Waiting, Suspended, ValidationFailed",
        ),
    },
}


def column(name: str, kind: str, path: str, d: str | None = None, priority: int = 0) -> dict:
    col = {"name": name, "type": kind, "jsonPath": path}
    if d:
        col["description"] = d
    if priority:
        col["priority"] = priority
    return col


cron_crd = {
    **envelope("crontaskworkflows"),
    "spec": {
        **spec_head("CronTaskWorkflow", "crontaskworkflows", "ctw"),
        "versions": [
            {
                **VERSION_HEAD,
                "additionalPrinterColumns": [
                    column("Schedule", "string", ".spec.schedule", "Cron schedule."),
                    column("Timezone", "string", ".spec.timeZone", "Time zone of the schedule.", 1),
                    column("Suspend", "boolean", ".spec.suspend", "Whether new runs are stopped."),
                    column("Active", "integer", ".status.activeCount", "Runs not finished yet."),
                    column(
                        "Last Schedule",
                        "date",
                        ".status.lastScheduleTime",
                        "Scheduled time of the last run.",
                    ),
                    column("Age", "date", ".metadata.creationTimestamp"),
                    column(
                        "Next Schedule",
                        "string",
                        ".status.nextScheduleTime",
                        "Next scheduled time.",
                        1,
                    ),
                    column(
                        "Missed",
                        "integer",
                        ".status.missedRuns",
                        "Scheduled times that got no run.",
                        1,
                    ),
                    column(
                        "Concurrency", "string", ".spec.concurrencyPolicy", "Concurrency policy.", 1
                    ),
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "CronTaskWorkflow starts a TaskWorkflow on a cron schedule, as a CronJob starts Jobs.",
                        "required": ["spec"],
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": cron_spec,
                            "status": cron_status,
                        },
                        "x-kubernetes-validations": [
                            {
                                "rule": f"self.metadata.name.size() <= {CRON_NAME_MAX}",
                                "message": f"a CronTaskWorkflow name has at most {CRON_NAME_MAX} characters "
                                "(its runs add the scheduled minute)",
                                "reason": "FieldValueInvalid",
                            }
                        ],
                    }
                },
            }
        ],
    },
}
CRON_HEADER = (
    "# CronTaskWorkflow CRD: the one source (Helm installs it from crds/; tests apply it to a real kube-apiserver).\n"
    "# spec.workflowTemplate.spec is the TaskWorkflow spec schema, generated by the same code as that CRD's.\n"
    "# The schedule and time zone are checked by the operator (a bad one sets Ready False / ValidationFailed).\n"
)

CRDS = {"taskworkflows": (TW_HEADER, crd), "crontaskworkflows": (CRON_HEADER, cron_crd)}


def main(argv: list[str]) -> int:
    """Write one CRD to stdout: taskworkflows (the default) or crontaskworkflows."""
    which = argv[0] if argv else "taskworkflows"
    if which not in CRDS or len(argv) > 1:
        sys.stderr.write(f"usage: gen_crd.py [{'|'.join(CRDS)}]\n")
        return 2
    header, body = CRDS[which]
    sys.stdout.write(
        header + "---\n" + yaml.dump(body, Dumper=D, sort_keys=False, width=120, allow_unicode=True)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
