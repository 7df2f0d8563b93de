"""Generate the TaskWorkflow CRD, the one source of charts/celery-harder/crds/.

    python scripts/gen_crd.py > charts/celery-harder/crds/taskworkflows.celery-harder.io.yaml

tests/k8s/test_crd.py checks that the committed file is this script's output.
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
                "description": "Celery call options: priority, time_limit, soft_time_limit (checked by the operator).",
                "x-kubernetes-preserve-unknown-fields": True,
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


workflow = node(1)
workflow["description"] = (
    "The workflow to run: a Node (task, chain, group or chord). Required; immutable "
    f"after creation. The API server checks the first {DEPTH} levels; the operator checks the rest."
)
workflow["x-kubernetes-validations"].append(
    {
        "rule": "self == oldSelf",
        "message": "spec.workflow is immutable; create a new TaskWorkflow instead",
        "reason": "FieldValueForbidden",
    }
)


def short(n: int, d: str) -> dict:
    return {"type": "string", "maxLength": n, "description": d}


def dt(d: str) -> dict:
    return {"type": "string", "format": "date-time", "description": d}


def cnt(d: str) -> dict:
    return {"type": "integer", "format": "int32", "minimum": 0, "description": d}


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
        "conditions": {
            "type": "array",
            "description": "Standard conditions; Succeeded is Unknown while running, True or False at the end.",
            "maxItems": 16,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "required": ["type", "status"],
                "properties": {
                    "type": short(316, "Condition type, e.g. Succeeded."),
                    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                    "reason": short(
                        1024,
                        "CamelCase reason, e.g. Running, Succeeded, Failed, Cancelled, Timeout.",
                    ),
                    "message": short(32768, "Human-readable detail."),
                    "lastTransitionTime": dt("When status last changed."),
                    "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                },
            },
        },
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

spec = {
    "type": "object",
    "description": "What to run.",
    "required": ["workflow"],
    "properties": {
        "workflow": workflow,
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

crd = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "taskworkflows.celery-harder.io",
        "labels": {"app.kubernetes.io/name": "celery-harder", "app.kubernetes.io/component": "crd"},
    },
    "spec": {
        "group": "celery-harder.io",
        "scope": "Namespaced",
        "names": {
            "kind": "TaskWorkflow",
            "listKind": "TaskWorkflowList",
            "plural": "taskworkflows",
            "singular": "taskworkflow",
            "shortNames": ["tw"],
            "categories": ["celery-harder"],
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
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
                            "spec": spec,
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
header = (
    "# TaskWorkflow CRD: the one source (Helm installs it from crds/; tests apply it to a real kube-apiserver).\n"
    "# Schemas cannot recurse: spec.workflow is checked structurally for 3 levels of nesting, deeper nodes\n"
    "# are kept as-is (x-kubernetes-preserve-unknown-fields) and validated by the operator.\n"
    "# Every list and string is bounded so that the CEL rules fit the API server's cost budget.\n"
)
sys.stdout.write(
    header + "---\n" + yaml.dump(crd, Dumper=D, sort_keys=False, width=120, allow_unicode=True)
)
