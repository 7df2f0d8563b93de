"""T2: the operator's own /metrics, read from a real `kopf run` against a real kube-apiserver.

The operator watches one fresh namespace only, so every count is this module's: three
TaskWorkflows (one succeeds, one fails, one is deleted while it runs) must show up
exactly in reconciles, resources by phase, dispatch latency, workflows finished and
the last-sync time.
"""

import time
from collections.abc import Iterator

import pytest

from celery_harder import metric_names as mn
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.operator_process import taskworkflow as tw
from tests.support.polling import wait_until
from tests.support.prom import Samples, by_label, scrape, value
from tests.support.stack import StackEnv, Worker

FINAL = ("Succeeded", "Failed", "Cancelled")


@pytest.fixture(scope="module")
def watched(kube_api, taskworkflow_crd) -> str:
    return kube_api.create_namespace(f"metrics-{int(time.time() * 1000) % 10**9}")


@pytest.fixture(scope="module")
def operator(kube_api, watched: str, stack: StackEnv, worker: Worker) -> Iterator[OperatorProcess]:
    with running_operator(stack, kube_api.env(), namespaces=(watched,)) as process:
        yield process


def phase(kube_api, ns: str, name: str) -> str | None:
    return kube_api.kubectl_json("get", "tw", name, "-n", ns).get("status", {}).get("phase")


def test_operator_metrics_count_what_it_did(kube_api, watched: str, operator) -> None:
    ns = watched
    started = time.time()
    first = scrape(operator.metrics_url)
    assert by_label(first, mn.OPERATOR_RECONCILES.series, "handler") == {
        "dispatch": 0, "sync": 0, "cancel_on_delete": 0, "cron_evaluate": 0
    }  # fmt: skip
    assert value(first, mn.OPERATOR_DISPATCH_LATENCY.name + "_count") == 0
    add = {"task": "add", "args": [1, 1]}
    kube_api.apply([
        tw("ok", {"chain": [add, {"task": "add", "args": [2]}]}),
        tw("bad", {"group": [add, {"task": "fail", "kwargs": {"message": "on purpose"}}]}),
        tw("slow", {"task": "sleep", "kwargs": {"seconds": 30}}),
    ], "-n", ns)  # fmt: skip
    wait_until(lambda: phase(kube_api, ns, "ok") in FINAL, 60, what="ok final")
    wait_until(lambda: phase(kube_api, ns, "bad") in FINAL, 60, what="bad final")
    wait_until(lambda: phase(kube_api, ns, "slow") == "Running", 60, what="slow running")
    assert (phase(kube_api, ns, "ok"), phase(kube_api, ns, "bad")) == ("Succeeded", "Failed")
    bad = kube_api.kubectl_json("get", "tw", "bad", "-n", ns)["status"]
    assert "DeliberateFailure" in bad["message"], bad  # it ran and failed: no spec error
    kube_api.kubectl("delete", "tw", "slow", "-n", ns, "--wait=true", "--timeout=60s", timeout=90)

    def settled() -> Samples | None:
        samples = scrape(operator.metrics_url)
        resources = {
            dict(ls)["phase"]: v
            for (n, ls), v in samples.items()
            if n == mn.OPERATOR_RESOURCES.series and dict(ls)["kind"] == "TaskWorkflow"
        }
        done = by_label(samples, mn.WORKFLOWS_FINISHED.series, "outcome")
        return samples if resources.get("Running") == 0 and done.get("cancelled") == 1 else None

    samples = wait_until(settled, 30, 0.1, "the operator's gauges settled")
    resources = {
        (dict(ls)["kind"], dict(ls)["phase"]): v
        for (n, ls), v in samples.items()
        if n == mn.OPERATOR_RESOURCES.series and v
    }
    listed = kube_api.kubectl_json("get", "tw", "-n", ns)["items"]
    assert sorted(item["status"]["phase"] for item in listed) == ["Failed", "Succeeded"]
    # What the API server holds, by phase: the deleted one is gone from the gauge too.
    assert resources == {("TaskWorkflow", "Succeeded"): 1, ("TaskWorkflow", "Failed"): 1}
    reconciles = by_label(samples, mn.OPERATOR_RECONCILES.series, "handler")
    errors = by_label(samples, mn.OPERATOR_RECONCILE_ERRORS.series, "handler")
    assert reconciles["dispatch"] == 3 and errors["dispatch"] == 0, (reconciles, errors)
    assert reconciles["cancel_on_delete"] == 1 and errors["cancel_on_delete"] == 0
    assert reconciles["sync"] >= 1
    assert reconciles["cron_evaluate"] == 0
    # One dispatch latency per resource it dispatched, each a few seconds at most.
    count = value(samples, mn.OPERATOR_DISPATCH_LATENCY.name + "_count")
    total = value(samples, mn.OPERATOR_DISPATCH_LATENCY.name + "_sum")
    assert count == 3 and total is not None and 0 <= total < 3 * 30
    assert value(samples, mn.WORKFLOWS_STARTED.series) == 3
    # Only this operator reads these workflows, so it saw each one finish first.
    assert by_label(samples, mn.WORKFLOWS_FINISHED.series, "outcome") == {
        "succeeded": 1, "failed": 1, "cancelled": 1, "timed_out": 0
    }  # fmt: skip
    last_sync = value(samples, mn.OPERATOR_LAST_SYNC.series)
    assert last_sync is not None and started <= last_sync <= time.time()
