"""T4-local: what a cluster does to running work, counted: nothing may be lost.

A worker pod deleted, a `helm upgrade` that rolls every pod, the Redis pod deleted
(it comes back from its append-only file on the PersistentVolume), the operator pod
deleted mid-workflow. Each test counts submitted, completed, lost and run twice.
"""

import time
import uuid
from typing import Any

import httpx
import pytest

from celery_harder import keys
from tests.cluster.workload import Ledger
from tests.support.polling import wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4


def worker_restarts(release: Release) -> dict[str, int]:
    return {
        pod: count
        for pod, count in release.restarts().items()
        if pod.startswith(release.component("worker"))
    }


def test_deleting_a_worker_pod_with_tasks_running_loses_nothing(
    release: Release, ledger: Ledger
) -> None:
    ledger.submit(seconds=10, count=4)
    wait_until(
        lambda: sum(1 for s in ledger.states().values() if s == "PROGRESS") >= 2, 60, 0.5, "running"
    )
    # Every worker pod, so whichever runs the tasks goes: with the default grace
    # period SIGTERM starts a warm shutdown that finishes what runs.
    pods = [p["metadata"]["name"] for p in release.pods("worker")]
    release.kubectl("delete", "pod", "-n", release.namespace, *pods, "--wait=false")
    wait_until(ledger.done, 240, 1, "every task done")
    counts = ledger.report("worker pod deleted")
    assert counts["lost"] == 0 and counts["completed"] == 4
    assert counts["duplicated"] == 0


def test_a_rollout_under_load_loses_nothing(release: Release, ledger: Ledger) -> None:
    ledger.submit(seconds=2, count=100)
    wait_until(lambda: any(s == "PROGRESS" for s in ledger.states().values()), 60, 0.5, "running")
    # Changes every pod's environment (the shared ConfigMap): the workers roll.
    # A letter first: eight hex digits can read as a number ("12345678", "1e234567"),
    # which the chart's schema rejects for an environment value.
    release.install(sets=[f"celery.extraEnv.ROLLOUT_MARK=r{uuid.uuid4().hex[:8]}"])
    wait_until(ledger.done, 600, 2, "every task done")
    counts = ledger.report("rollout under load")
    assert counts["lost"] == 0 and counts["completed"] == 100
    # At-least-once delivery: a task whose worker went away mid-run may run again.
    print(f"run twice: {counts['duplicated']} (at-least-once; each had lost its worker)")


def test_deleting_the_redis_pod_loses_nothing_and_revokes_nothing(
    release: Release, ledger: Ledger
) -> None:
    before = worker_restarts(release)
    ledger.submit(seconds=2, count=100)
    wait_until(lambda: any(s == "PROGRESS" for s in ledger.states().values()), 60, 0.5, "running")
    (old,) = release.pods("redis")
    name = old["metadata"]["name"]
    release.kubectl("delete", "pod", "-n", release.namespace, name, "--wait=false")
    seen_503 = wait_until(lambda: _api_status(release) == 503, 60, 0.2, "the API's 503")
    wait_until(lambda: _ready_replacement(release, old), 180, 0.5, "a new Redis pod Ready")
    outage_over = time.monotonic()
    wait_until(lambda: _api_status(release) == 202, 120, 0.5, "the API's 202 again")
    wait_until(lambda: _done_or_none(ledger), 300, 2, "every task done")
    recovered_in = time.monotonic() - outage_over
    counts = ledger.report("Redis pod deleted")
    states = ledger.states()
    print(f"every task done {recovered_in:.0f} s after Redis was back")
    assert seen_503
    assert counts["lost"] == 0 and counts["completed"] == 100, states
    assert "REVOKED" not in states.values()
    # KEDA may have added workers meanwhile, or scaled one in once the queue drained;
    # none of those still there, old or new, restarted.
    after = worker_restarts(release)
    kept = [p for p in before if p in after]
    assert {p: after[p] for p in kept} == {p: before[p] for p in kept}
    assert set(after.values()) == {0}, "the workers reconnected without a restart"


def test_deleting_the_operator_pod_mid_workflow_resumes_and_runs_each_leaf_once(
    release: Release, ledger: Ledger
) -> None:
    name = f"survivor-{uuid.uuid4().hex[:6]}"
    resource = {
        "apiVersion": "celery-harder.io/v1alpha1",
        "kind": "TaskWorkflow",
        "metadata": {"name": name, "namespace": release.namespace},
        "spec": {"workflow": {"group": [{"task": "sleep", "args": [4]}] * 4}},
    }
    release.kubectl.apply(resource)
    wait_until(lambda: _phase(release, name) == "Running", 60, 0.5, "Running")
    (old,) = release.pods("operator")
    release.kubectl("delete", "pod", "-n", release.namespace, old["metadata"]["name"])
    wait_until(lambda: _phase(release, name) in ("Succeeded", "Failed"), 180, 1, "final")
    status = release.get("tw", name)["status"]
    assert (status["phase"], status["progress"]) == ("Succeeded", "4/4"), status
    (new,) = release.pods("operator")
    assert new["metadata"]["name"] != old["metadata"]["name"]
    runs = ledger.client.results.mget([keys.DELIVERIES + n["taskId"] for n in status["nodes"]])
    assert [int(r or 0) for r in runs] == [1] * 4, "each leaf ran exactly once"
    release.kubectl("delete", "tw", "-n", release.namespace, name)


def _ready_replacement(release: Release, old: dict[str, Any]) -> bool:
    """Whether a Redis pod other than `old` runs and is Ready."""
    for pod in release.pods("redis"):
        if pod["metadata"]["uid"] == old["metadata"]["uid"]:
            continue
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        return conditions.get("Ready") == "True"
    return False


def _phase(release: Release, name: str) -> Any:
    return release.get("tw", name).get("status", {}).get("phase")


def _api_status(release: Release) -> int:
    try:
        with release.api(timeout=5) as client:
            return client.post("/add", json={"x": 1, "y": 1}).status_code
    except httpx.HTTPError:
        return 0


def _done_or_none(ledger: Ledger) -> bool:
    try:
        return ledger.done()
    except Exception:  # noqa: BLE001 - Redis not reachable yet: keep polling
        return False
