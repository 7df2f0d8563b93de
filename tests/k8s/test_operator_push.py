"""T2: the operator follows running workflows by push, and leaves finished ones alone.

Each test starts its own `kopf run` (the poll interval is what it varies), against the
session's kube-apiserver, Redis and prefork worker.
"""

import time
from typing import Any

from tests.k8s.test_operator import get, tw, wait_final
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.polling import wait_until
from tests.support.stack import StackEnv, Worker


def log_lines(operator: OperatorProcess, ns: str, name: str) -> list[str]:
    """Every line of this operator's logs about one resource."""
    needle = f"[{ns}/{name}]"
    logs = sorted(operator.stack.workdir.glob("operator-*.log"))
    return [line for log in logs for line in log.read_text().splitlines() if needle in line]


def timer_runs(operator: OperatorProcess, ns: str, name: str) -> int:
    return sum("Timer 'sync' succeeded" in line for line in log_lines(operator, ns, name))


def test_a_result_reaches_the_resource_long_before_the_poll_interval(
    kube_api, taskworkflow_crd, stack: StackEnv, worker: Worker, kube_namespace
) -> None:
    """With a 60 s poll, only the pushed leaf result can end the run within seconds."""
    ns = kube_namespace
    env = {"CELERY_HARDER_OPERATOR_POLL_INTERVAL": "60"}
    with running_operator(stack, kube_api.env(), env) as operator:
        group = [{"task": "sleep", "args": [1]}, {"task": "add", "args": [1, 1]}]
        kube_api.apply(tw("pushed", {"group": group}), "-n", ns)
        wait_until(lambda: get(kube_api, ns, "pushed").get("status", {}).get("phase"), 30,
                   what="the create handler's first status")  # fmt: skip
        started = time.monotonic()
        status = wait_final(kube_api, ns, "pushed", timeout=15)
        took = time.monotonic() - started
        assert status["phase"] == "Succeeded" and status["progress"] == "2/2", status
        assert status["result"] == [{"slept": 1}, 2]
        # The sleep takes 1 s; the next poll would come 60 s after the first read.
        assert took < 15, took
        runs = timer_runs(operator, ns, "pushed")
        assert 1 <= runs <= 20, runs  # woken by results, not spinning


def test_finished_resources_get_no_further_writes_or_handler_runs(
    kube_api, taskworkflow_crd, stack: StackEnv, worker: Worker, kube_namespace
) -> None:
    """Finished ones, with a TTL to wait out or without, are neither written nor visited.

    The control: a running workflow in the same operator gets timer runs and writes.
    The window is eight poll intervals, so a timer on a finished resource would show.
    """
    ns = kube_namespace
    interval = 0.5
    env = {"CELERY_HARDER_OPERATOR_POLL_INTERVAL": str(interval)}
    finished: dict[str, Any] = {
        "plain": tw("plain", {"task": "add", "args": [1, 1]}),
        "with-ttl": tw("with-ttl", {"task": "add", "args": [2, 2]}, ttlSecondsAfterFinished=3600),
        "failed": tw("failed", {"task": "fail", "args": ["on purpose"]}),
    }
    with running_operator(stack, kube_api.env(), env) as operator:
        kube_api.apply(list(finished.values()), "-n", ns)
        phases = {name: wait_final(kube_api, ns, name)["phase"] for name in finished}
        assert phases == {"plain": "Succeeded", "with-ttl": "Succeeded", "failed": "Failed"}
        kube_api.apply(tw("running", {"task": "sleep", "args": [6]}), "-n", ns)
        wait_until(lambda: get(kube_api, ns, "running").get("status", {}).get("phase")
                   == "Running", 30, what="the control to run")  # fmt: skip
        # One interval of grace for a run already under way when the phase became final.
        final_at = time.monotonic()
        wait_until(lambda: time.monotonic() > final_at + interval, 10, what="the grace period")
        versions = {n: get(kube_api, ns, n)["metadata"]["resourceVersion"] for n in finished}
        lines = {n: len(log_lines(operator, ns, n)) for n in finished}
        control_version = get(kube_api, ns, "running")["metadata"]["resourceVersion"]
        control_runs = timer_runs(operator, ns, "running")
        wait_until(lambda: time.monotonic() > final_at + 9 * interval, 30, what="the window")
        after = {n: get(kube_api, ns, n)["metadata"]["resourceVersion"] for n in finished}
        assert after == versions, "a finished resource was written"
        assert {n: len(log_lines(operator, ns, n)) for n in finished} == lines, (
            "a handler ran for a finished resource"
        )
        status = wait_final(kube_api, ns, "running", timeout=30)
        assert status["phase"] == "Succeeded"
        assert timer_runs(operator, ns, "running") > control_runs >= 1
        assert get(kube_api, ns, "running")["metadata"]["resourceVersion"] != control_version
        # The TTL'd resource is still there: its daemon sleeps out the hour.
        assert get(kube_api, ns, "with-ttl")["status"]["phase"] == "Succeeded"
