"""T4-local: no credential of the release shows in a TaskWorkflow, an Event or a pod log.

Workflows that succeed, fail and are refused run through the operator pod, and Redis
drops every client connection once (the exporter then logs a traceback, which used to
print the broker URL with its password); then every TaskWorkflow's status, every Event
of the namespace and the log of every container of the release are searched for the
Redis and Flower passwords the hook Job generated.
"""

from typing import Any

import pytest

from tests.support.polling import wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4

FINAL = {"Succeeded", "Failed"}
WORKFLOWS = {
    "secrets-chain": {"chain": [{"task": "add", "args": [1, 2]}, {"task": "mul", "args": [3]}]},
    "secrets-failing": {"task": "fail", "args": ["on purpose"]},
    "secrets-refused": {"task": "os.system", "args": ["true"]},
}


def taskworkflow(name: str, workflow: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "celery-harder.io/v1alpha1",
        "kind": "TaskWorkflow",
        "metadata": {"name": name},
        "spec": {"workflow": workflow},
    }


def test_no_password_in_statuses_events_or_logs(release: Release) -> None:
    secrets = {
        "redis": release.secret(release.component("redis"), "redis-password"),
        "flower": release.secret(release.component("flower"), "password"),
    }
    assert all(len(s) >= 16 for s in secrets.values()), "generated passwords are long"
    manifests = [taskworkflow(name, wf) for name, wf in WORKFLOWS.items()]
    release.kubectl.apply(manifests, "-n", release.namespace)

    def final_phase(name: str) -> str | None:
        phase: str | None = release.get("tw", name).get("status", {}).get("phase")
        return phase if phase in FINAL else None

    try:
        phases = {
            n: wait_until(lambda n=n: final_phase(n), 120, what=f"{n} final") for n in WORKFLOWS
        }
        assert phases == {
            "secrets-chain": "Succeeded",
            "secrets-failing": "Failed",
            "secrets-refused": "Failed",
        }
        texts = {
            "taskworkflows": release.kubectl(
                "get", "tw", "-n", release.namespace, "-o", "json"
            ).stdout
        }
    finally:
        release.kubectl("delete", "tw", *WORKFLOWS, "-n", release.namespace, "--wait=false")
    # The exporter logs a traceback whenever Redis drops its connection: make one happen
    # here, so that this test does not depend on an earlier one having broken Redis.
    exporter_pod = release.pods("exporter")[0]["metadata"]["name"]

    def exporter_errors() -> int:
        log = release.kubectl("logs", "-n", release.namespace, exporter_pod, check=False).stdout
        return log.count("celery-exporter exception")

    before = exporter_errors()
    client = release.redis()
    # The exporter reads task events on a pub/sub connection, the others are normal ones.
    for kind in ("pubsub", "normal"):
        client.execute_command("CLIENT", "KILL", "TYPE", kind)
    wait_until(lambda: exporter_errors() > before, 60, what="a traceback in the exporter's log")
    texts["events"] = release.kubectl("get", "events", "-n", release.namespace, "-o", "json").stdout
    read: set[str] = set()
    for pod in release.pods():
        for container in pod["spec"]["containers"]:
            name = pod["metadata"]["name"]
            # check=False: a pod KEDA is scaling in may be gone by now; the check below
            # still demands a log from every component.
            log = release.kubectl(
                "logs", "-n", release.namespace, name, "-c", container["name"], check=False
            ).stdout
            texts[f"{name}/{container['name']}"] = log
            if log:
                read.add(pod["metadata"]["labels"].get("app.kubernetes.io/component", ""))
    assert {"api", "worker", "operator", "flower", "exporter"} <= read, sorted(read)
    leaks = {
        what: [where for where, text in texts.items() if secret in text]
        for what, secret in secrets.items()
    }
    assert leaks == {"redis": [], "flower": []}, leaks
