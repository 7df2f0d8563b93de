"""T2: the TaskWorkflow CRD against a real kube-apiserver (started by the kube_api fixture).

Shows that the chart's CRD is accepted (structural schema, CEL cost budget), that
`kubectl apply` accepts valid workflows and the API server itself rejects invalid ones
with a readable message, and what `kubectl get tw` prints.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import pytest
import yaml

from tests.k8s.conftest import CRD_NAME, CRD_PATH
from tests.support.kube import REPO_ROOT

API_VERSION = "celery-harder.io/v1alpha1"


def tw(name: str, namespace: str, workflow=None, **spec) -> str:
    """A TaskWorkflow manifest as YAML (what a user would write in workflow.yaml)."""
    body = dict(spec)
    if workflow is not None:
        body["workflow"] = workflow
    return yaml.safe_dump(
        {
            "apiVersion": API_VERSION,
            "kind": "TaskWorkflow",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        },
        sort_keys=False,
    )


def task(name, *args, **kwargs):
    node = {"task": name, "args": list(args)}
    if kwargs:
        node["kwargs"] = kwargs
    return node


CHAIN = {"chain": [task("add", 2, 2), task("mul", 4), task("add", 10)]}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def apply_fails(kube, manifest: str) -> str:
    proc = kube.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0, f"apply unexpectedly succeeded: {proc.stdout}"
    return proc.stderr


# ------------------------------------------------------------------ the CRD


def patch_status_subresource(kube_api, namespace, name, body, check=True):
    """kubectl patch --subresource=status with a merge patch (JSON body)."""
    return kube_api.kubectl(
        "patch", "tw", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(body), check=check,
    )  # fmt: skip


def test_crd_file_is_generated_from_its_one_source():
    generated = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_crd.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert generated == CRD_PATH.read_text(), "run: python scripts/gen_crd.py > " + str(CRD_PATH)


def test_crd_file_is_the_contract():
    crd = yaml.safe_load(CRD_PATH.read_text())
    assert crd["metadata"]["name"] == CRD_NAME
    spec = crd["spec"]
    assert spec["group"] == "celery-harder.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "TaskWorkflow"
    assert spec["names"]["plural"] == "taskworkflows"
    assert spec["names"]["singular"] == "taskworkflow"
    assert spec["names"]["shortNames"] == ["tw"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert not status.get("x-kubernetes-preserve-unknown-fields")
    assert status["properties"]["phase"]["enum"] == [
        "Pending",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
    ]


def test_crd_is_established(kube_api, taskworkflow_crd):
    crd = kube_api.kubectl_json("get", "crd", CRD_NAME)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True", crd["status"]
    assert conditions.get("NamesAccepted") == "True", crd["status"]
    # no NonStructuralSchema / cost-budget complaints
    assert "NonStructuralSchema" not in conditions
    assert crd["status"]["acceptedNames"]["shortNames"] == ["tw"]
    resources = kube_api.kubectl(
        "api-resources", "--api-group=celery-harder.io", "-o", "wide"
    ).stdout
    assert re.search(
        r"^taskworkflows\s+tw\s+celery-harder.io/v1alpha1\s+true\s+TaskWorkflow", resources, re.M
    ), resources


# ------------------------------------------------------------ valid resources


def test_apply_valid_chain(kube_api, taskworkflow_crd, kube_namespace):
    name = unique("chain")
    out = kube_api.kubectl(
        "apply", "-f", "-", input=tw(name, kube_namespace, CHAIN, timeoutSeconds=60)
    ).stdout
    assert f"taskworkflow.celery-harder.io/{name} created" in out
    obj = kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)
    assert obj["spec"]["workflow"] == CHAIN  # free-form args kept, nothing pruned
    assert "shutdown" not in obj["spec"]  # no default: unset means keep running
    assert obj["spec"]["timeoutSeconds"] == 60
    assert obj["metadata"]["generation"] == 1


def test_apply_valid_group_chord_and_deep_nesting(kube_api, taskworkflow_crd, kube_namespace):
    chord = {
        "chord": {
            "header": [task("add", 1, 1), {"chain": [task("add", 2, 2), task("mul", 3)]}],
            "body": {"task": "xsum", "options": {"queue": "celery"}},
        }
    }
    # 5 levels deep: levels 4+ are kept as-is (preserve-unknown-fields) for the operator to check
    deep = {"chain": [{"group": [{"chain": [{"group": [{"chain": [task("add", 1, 2)]}]}]}]}]}
    group = {
        "group": [task("request_info", {"any": ["json", 1, None]}), task("sleep", seconds=0.1)]
    }
    for prefix, wf in (("chord", chord), ("deep", deep), ("group", group)):
        name = unique(prefix)
        kube_api.kubectl("apply", "-f", "-", input=tw(name, kube_namespace, wf))
        got = kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)["spec"]["workflow"]
        assert got == wf, prefix


# ---------------------------------------------------------- invalid resources


def test_rejects_node_with_two_kinds(kube_api, taskworkflow_crd, kube_namespace):
    err = apply_fails(
        kube_api,
        tw(
            unique("twokinds"),
            kube_namespace,
            {"task": "add", "args": [1, 2], "chain": [task("add", 1, 1)]},
        ),
    )
    assert "is invalid" in err
    assert "spec.workflow" in err
    assert "a workflow node must have exactly one of task, chain, group, chord" in err

    # nested node (level 2) with two kinds: the error names its path
    err = apply_fails(
        kube_api,
        tw(
            unique("twokinds"),
            kube_namespace,
            {"chain": [task("add", 1, 1), {"group": [task("add", 1, 1)], "task": "mul"}]},
        ),
    )
    assert "spec.workflow.chain[1]" in err
    assert "a workflow node must have exactly one of task, chain, group, chord" in err

    # every other pair, at levels 1 and 3
    for node in (
        {
            "group": [task("add", 1, 1)],
            "chord": {"header": [task("add", 1, 1)], "body": task("xsum")},
        },
        {"chain": [task("add", 1, 1)], "group": [task("add", 1, 1)]},
        {"chain": [{"group": [{"task": "add", "group": [task("add", 1, 1)]}]}]},
    ):
        err = apply_fails(kube_api, tw(unique("twokinds"), kube_namespace, node))
        assert "a workflow node must have exactly one of task, chain, group, chord" in err, node

    # and a node with no kind at all
    err = apply_fails(kube_api, tw(unique("nokind"), kube_namespace, {"args": [1]}))
    assert "a workflow node must have exactly one of task, chain, group, chord" in err


def test_list_bounds(kube_api, taskworkflow_crd, kube_namespace):
    """Lists hold up to 1000 nodes (the operator's default max_leaves); more is refused."""
    name = unique("wide")
    wide = {"group": [task("add", i, i) for i in range(1000)]}
    kube_api.kubectl("apply", "--server-side", "-f", "-", input=tw(name, kube_namespace, wide))
    err = apply_fails(
        kube_api,
        tw(unique("toowide"), kube_namespace, {"group": wide["group"] + [task("add", 0, 0)]}),
    )
    assert "spec.workflow.group: Too many: 1001: must have at most 1000 items" in err


def test_rejects_missing_workflow(kube_api, taskworkflow_crd, kube_namespace):
    err = apply_fails(kube_api, tw(unique("noworkflow"), kube_namespace, None, timeoutSeconds=10))
    assert "spec.workflow: Required value" in err


def test_rejects_bad_fields(kube_api, taskworkflow_crd, kube_namespace):
    err = apply_fails(kube_api, tw(unique("badtimeout"), kube_namespace, CHAIN, timeoutSeconds=0))
    assert "spec.timeoutSeconds" in err and "should be greater than or equal to 1" in err
    err = apply_fails(kube_api, tw(unique("emptychain"), kube_namespace, {"chain": []}))
    assert "spec.workflow.chain" in err and "should have at least 1 items" in err
    err = apply_fails(
        kube_api,
        tw(unique("chordnobody"), kube_namespace, {"chord": {"header": [task("add", 1, 1)]}}),
    )
    assert "spec.workflow.chord.body: Required value" in err


def test_workflow_is_immutable(kube_api, taskworkflow_crd, kube_namespace):
    name = unique("immutable")
    kube_api.kubectl("apply", "-f", "-", input=tw(name, kube_namespace, CHAIN))
    changed = {"chain": [task("add", 2, 2), task("mul", 5)]}
    err = apply_fails(kube_api, tw(name, kube_namespace, changed))
    assert "spec.workflow is immutable; create a new TaskWorkflow instead" in err
    assert (
        kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)["spec"]["workflow"] == CHAIN
    )

    # free-form parts count too: only one argument changed, deep inside
    for changed in (
        {"chain": [task("add", 2, 3), task("mul", 4), task("add", 10)]},
        {"chain": [task("add", 2, 2), task("mul", 4), task("add", 10, extra=1)]},
        {
            "chain": [
                task("add", 2, 2),
                task("mul", 4),
                dict(task("add", 10), options={"queue": "q"}),
            ]
        },
    ):
        err = apply_fails(kube_api, tw(name, kube_namespace, changed))
        assert "spec.workflow is immutable" in err, changed

    # other spec fields stay editable (shutdown is how a running workflow is stopped)
    kube_api.kubectl("apply", "-f", "-", input=tw(name, kube_namespace, CHAIN, shutdown="Stop"))
    obj = kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)
    assert obj["spec"]["shutdown"] == "Stop"
    assert obj["metadata"]["generation"] == 2


# --------------------------------------------------------------- status + get


STATUS = {
    "phase": "Running",
    "progress": "2/5",
    "workflowId": "0b6f2f0e-1b1e-4c53-9b0e-2f1d1c5a7e11",
    "startedAt": "2026-01-01T00:00:00Z",
    "message": "2 of 5 tasks done",
    "observedGeneration": 1,
    "conditions": [
        {
            "type": "Succeeded",
            "status": "Unknown",
            "reason": "Running",
            "message": "running",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ],
    "counts": {
        "total": 5,
        "pending": 1,
        "running": 2,
        "succeeded": 2,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
    },
    "nodes": [{"path": "chain[0]", "task": "add", "taskId": "abc", "phase": "SUCCESS"}],
    "nodesTruncated": False,
    "result": {"partial": [1, 2]},
}


def _table(text: str) -> list[list[str]]:
    """Split kubectl's table output on runs of 2+ spaces (cells can hold single spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_kubectl_get_columns_and_status_subresource(kube_api, taskworkflow_crd, kube_namespace):
    name = unique("columns")
    kube_api.kubectl("apply", "-f", "-", input=tw(name, kube_namespace, CHAIN))

    header, row = _table(kube_api.kubectl("get", "tw", name, "-n", kube_namespace).stdout)
    assert header == ["NAME", "STATUS", "PROGRESS", "REASON", "STARTED", "AGE"]
    assert row[0] == name

    # status is written through the status subresource only
    out = patch_status_subresource(kube_api, kube_namespace, name, {"status": STATUS}).stdout
    assert "patched" in out
    obj = kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)
    assert obj["status"] == STATUS
    assert obj["metadata"]["generation"] == 1  # status writes do not bump generation

    header, row = _table(kube_api.kubectl("get", "tw", name, "-n", kube_namespace).stdout)
    assert header == ["NAME", "STATUS", "PROGRESS", "REASON", "STARTED", "AGE"]
    assert row[:4] == [name, "Running", "2/5", "Running"]
    assert re.fullmatch(r"\d+[smhdy].*", row[4]), row  # Started is a date column: shown as an age

    header, row = _table(
        kube_api.kubectl("get", "tw", name, "-n", kube_namespace, "-o", "wide").stdout
    )
    assert header == [
        "NAME",
        "STATUS",
        "PROGRESS",
        "REASON",
        "STARTED",
        "AGE",
        "MESSAGE",
        "WORKFLOW-ID",
    ]
    assert row[-2:] == ["2 of 5 tasks done", STATUS["workflowId"]]

    # the short name and the category work too
    assert name in kube_api.kubectl("get", "celery-harder", "-n", kube_namespace).stdout


def test_status_schema_is_enforced(kube_api, taskworkflow_crd, kube_namespace):
    name = unique("status")
    kube_api.kubectl("apply", "-f", "-", input=tw(name, kube_namespace, CHAIN))

    def patch_status(status):
        return patch_status_subresource(
            kube_api, kube_namespace, name, {"status": status}, check=False
        )

    proc = patch_status({"phase": "Exploded"})
    assert proc.returncode != 0
    assert 'status.phase: Unsupported value: "Exploded"' in proc.stderr

    proc = patch_status({"nodes": [{"path": str(i)} for i in range(101)]})
    assert proc.returncode != 0
    assert "status.nodes: Too many: 101: must have at most 100 items" in proc.stderr

    # unknown status fields are pruned, not stored (kopf handler return values would vanish)
    proc = patch_status({"phase": "Pending", "myHandler": {"x": 1}})
    assert proc.returncode == 0, proc.stderr
    status = kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)["status"]
    assert status == {"phase": "Pending"}

    # a spec change through the status subresource is ignored
    patch_status_subresource(kube_api, kube_namespace, name, {"spec": {"shutdown": "Terminate"}})
    assert "shutdown" not in kube_api.kubectl_json("get", "tw", name, "-n", kube_namespace)["spec"]


@pytest.mark.parametrize("phase", ["Pending", "Running", "Succeeded", "Failed", "Cancelled"])
def test_every_phase_is_accepted(kube_api, taskworkflow_crd, kube_namespace, phase):
    name = unique(phase.lower())
    kube_api.kubectl(
        "apply", "-f", "-", input=tw(name, kube_namespace, {"task": "add", "args": [1, 2]})
    )
    patch_status_subresource(kube_api, kube_namespace, name, {"status": {"phase": phase}})
    _header, row = _table(kube_api.kubectl("get", "tw", name, "-n", kube_namespace).stdout)
    assert row[1] == phase
