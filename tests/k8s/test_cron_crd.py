"""T2: the CronTaskWorkflow CRD against a real kube-apiserver (no operator runs here).

Shows that the chart's CRD is accepted, that it is the generator's output, that the API
server fills in the defaults and refuses what it can check itself, and what
`kubectl get ctw` prints.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import yaml

from tests.k8s.conftest import CRD_PATH, CRON_CRD_NAME, CRON_CRD_PATH
from tests.support.kube import REPO_ROOT

WORKFLOW = {"chain": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [3]}]}


def ctw(name: str, namespace: str, template_spec=None, **spec) -> str:
    body = {"schedule": "*/5 * * * *", **spec}
    body.setdefault("workflowTemplate", {"spec": template_spec or {"workflow": WORKFLOW}})
    return yaml.safe_dump({
        "apiVersion": "celery-harder.io/v1alpha1", "kind": "CronTaskWorkflow",
        "metadata": {"name": name, "namespace": namespace}, "spec": body,
    })  # fmt: skip


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def apply_fails(kube, manifest: str) -> str:
    proc = kube.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0, f"apply unexpectedly succeeded: {proc.stdout}"
    return proc.stderr


def table(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_crd_file_is_generated_from_its_one_source() -> None:
    generated = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_crd.py"), "crontaskworkflows"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert generated == CRON_CRD_PATH.read_text(), (
        f"run: python scripts/gen_crd.py crontaskworkflows > {CRON_CRD_PATH}"
    )


def test_template_spec_is_the_taskworkflow_spec_schema() -> None:
    """One source: the template's spec is TaskWorkflow's spec, less the immutability rule."""

    def schema(path):
        return yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    tw_spec = schema(CRD_PATH)["properties"]["spec"]
    template = schema(CRON_CRD_PATH)["properties"]["spec"]["properties"]["workflowTemplate"]
    template_spec = template["properties"]["spec"]
    assert template_spec["properties"].keys() == tw_spec["properties"].keys()
    for key in ("timeoutSeconds", "ttlSecondsAfterFinished", "shutdown"):
        assert template_spec["properties"][key] == tw_spec["properties"][key]
    tw_workflow, template_workflow = (s["properties"]["workflow"] for s in (tw_spec, template_spec))
    assert template_workflow["properties"] == tw_workflow["properties"]
    rules = [r["rule"] for r in template_workflow["x-kubernetes-validations"]]
    assert "self == oldSelf" in [r["rule"] for r in tw_workflow["x-kubernetes-validations"]]
    assert "self == oldSelf" not in rules  # a template may be edited: later runs take it


def test_crd_is_established_with_its_names(kube_api, taskworkflow_crd) -> None:
    crd = kube_api.kubectl_json("get", "crd", CRON_CRD_NAME)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True"
    resources = kube_api.kubectl("api-resources", "--api-group=celery-harder.io").stdout
    assert re.search(
        r"^crontaskworkflows\s+ctw\s+celery-harder.io/v1alpha1\s+true\s+CronTaskWorkflow",
        resources, re.M,
    ), resources  # fmt: skip


def test_defaults_are_filled_in(kube_api, taskworkflow_crd, kube_namespace) -> None:
    name = unique("defaults")
    kube_api.kubectl("apply", "-f", "-", input=ctw(name, kube_namespace))
    spec = kube_api.kubectl_json("get", "ctw", name, "-n", kube_namespace)["spec"]
    assert spec["timeZone"] == "UTC"
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert spec["successfulRunsHistoryLimit"] == 3 and spec["failedRunsHistoryLimit"] == 1
    assert "startingDeadlineSeconds" not in spec


def test_template_stays_editable(kube_api, taskworkflow_crd, kube_namespace) -> None:
    name = unique("editable")
    kube_api.kubectl("apply", "-f", "-", input=ctw(name, kube_namespace))
    changed = {"workflow": {"task": "add", "args": [1, 1]}, "timeoutSeconds": 30}
    kube_api.kubectl("apply", "-f", "-", input=ctw(name, kube_namespace, changed))
    got = kube_api.kubectl_json("get", "ctw", name, "-n", kube_namespace)
    assert got["spec"]["workflowTemplate"]["spec"] == changed


def test_api_server_refuses_what_it_can_check(kube_api, taskworkflow_crd, kube_namespace) -> None:
    ns = kube_namespace
    err = apply_fails(kube_api, ctw(unique("policy"), ns, concurrencyPolicy="Sometimes"))
    assert 'spec.concurrencyPolicy: Unsupported value: "Sometimes"' in err
    err = apply_fails(kube_api, ctw(unique("nosched"), ns, schedule=""))
    assert "spec.schedule" in err
    err = apply_fails(kube_api, ctw(unique("limit"), ns, successfulRunsHistoryLimit=-1))
    assert "spec.successfulRunsHistoryLimit" in err
    err = apply_fails(kube_api, ctw(unique("deadline"), ns, startingDeadlineSeconds=0))
    assert "spec.startingDeadlineSeconds" in err
    # the template is a TaskWorkflow spec, checked as one
    two_kinds = {"workflow": {"task": "add", "chain": []}}
    err = apply_fails(kube_api, ctw(unique("twokinds"), ns, two_kinds))
    assert "a workflow node must have exactly one of task, chain, group, chord" in err
    err = apply_fails(kube_api, ctw(unique("noworkflow"), ns, {"timeoutSeconds": 5}))
    assert "spec.workflowTemplate.spec.workflow: Required value" in err
    stopped = {"workflow": WORKFLOW, "shutdown": "Stop"}
    err = apply_fails(kube_api, ctw(unique("shutdown"), ns, stopped))
    assert "workflowTemplate.spec.shutdown would stop every run" in err
    # CronJob's name bound: the run's name adds "-" and the scheduled minute
    err = apply_fails(kube_api, ctw("n" * 53, ns))
    assert "a CronTaskWorkflow name has at most 52 characters" in err
    kube_api.kubectl("apply", "-f", "-", input=ctw("n" * 52, ns))


def test_kubectl_get_columns(kube_api, taskworkflow_crd, kube_namespace) -> None:
    ns, name = kube_namespace, unique("columns")
    kube_api.kubectl("apply", "-f", "-", input=ctw(name, ns, suspend=True))
    header, row = table(kube_api.kubectl("get", "ctw", name, "-n", ns).stdout)
    assert header == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]
    assert row[:3] == [name, "*/5 * * * *", "true"]
    status = {"lastScheduleTime": "2026-01-01T00:00:00Z", "activeCount": 2, "missedRuns": 4,
              "nextScheduleTime": "2026-01-01T00:05:00Z"}  # fmt: skip
    kube_api.kubectl("patch", "ctw", name, "-n", ns, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": status}))  # fmt: skip
    header, row = table(kube_api.kubectl("get", "ctw", name, "-n", ns).stdout)
    assert row[3] == "2" and re.fullmatch(r"\d+[smhdy].*", row[4]), row
    header, row = table(kube_api.kubectl("get", "ctw", name, "-n", ns, "-o", "wide").stdout)
    assert header == [
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE",
        "NEXT SCHEDULE", "MISSED", "CONCURRENCY",
    ], header  # fmt: skip
    assert row[header.index("NEXT SCHEDULE")] == "2026-01-01T00:05:00Z"
    assert row[header.index("MISSED")] == "4"
    assert name in kube_api.kubectl("get", "celery-harder", "-n", ns).stdout


def test_status_schema_is_enforced(kube_api, taskworkflow_crd, kube_namespace) -> None:
    ns, name = kube_namespace, unique("status")
    kube_api.kubectl("apply", "-f", "-", input=ctw(name, ns))

    def patch(status):
        return kube_api.kubectl("patch", "ctw", name, "-n", ns, "--subresource=status",
                                "--type=merge", "-p", json.dumps({"status": status}),
                                check=False)  # fmt: skip

    proc = patch({"active": [{"name": str(i)} for i in range(101)]})
    assert proc.returncode != 0 and "must have at most 100 items" in proc.stderr
    proc = patch({"missedRuns": -1})
    assert proc.returncode != 0 and "status.missedRuns" in proc.stderr
    # what a kopf handler might return is pruned, never stored
    assert patch({"activeCount": 0, "evaluate": {"x": 1}}).returncode == 0
    assert kube_api.kubectl_json("get", "ctw", name, "-n", ns)["status"] == {"activeCount": 0}
