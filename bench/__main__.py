"""Measure celery-harder on loopback: submission, end-to-end throughput, workflows, operator.

Everything runs for real (redis-server, a prefork worker with 2 processes, uvicorn,
and, when its binaries are cached, kube-apiserver with the operator). Timings on a
shared 2-core machine are noisy: read the ratios, measured in one run.
"""

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from tests.support.kube import ControlPlane, MissingBinaryError
from tests.support.operator_process import running_operator
from tests.support.stack import ApiServer, StackEnv, running_api, running_redis, running_worker

RESULTS = Path(__file__).parent / "results.md"
TASKS = 500
WORKFLOWS = 100


def wait_all(check: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish")
        time.sleep(0.05)  # poll period


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_tasks(api: ApiServer, engine: WorkflowEngine, rows: list[tuple[str, str]]) -> None:
    client = engine.client
    with api.client(timeout=30) as http:
        ids: list[str] = []
        api_submit = timed(lambda: ids.extend(
            http.post("/add", json={"x": i, "y": i}).json()["task_id"] for i in range(TASKS)
        ))  # fmt: skip
        direct_ids: list[str] = []
        direct_submit = timed(lambda: direct_ids.extend(
            client.submit("add", [i, i]) for i in range(TASKS)
        ))  # fmt: skip

        def all_done() -> bool:
            return all(
                (s := client.status(t)) is not None and s.state == "SUCCESS"
                for t in ids + direct_ids
            )

        started = time.perf_counter()
        wait_all(all_done)
        drain = time.perf_counter() - started
    rows.append((f"POST /add, {TASKS} sequential requests", f"{TASKS / api_submit:.0f} req/s"))
    rows.append(
        (f"TaskClient.submit (no HTTP), {TASKS} calls", f"{TASKS / direct_submit:.0f} calls/s")
    )
    rows.append(("HTTP overhead (API time / direct time)", f"{api_submit / direct_submit:.2f}×"))
    rows.append(
        (f"{2 * TASKS} add tasks, worker with 2 processes, drain after submit", f"{drain:.1f} s")
    )


def bench_workflows(api: ApiServer, engine: WorkflowEngine, rows: list[tuple[str, str]]) -> None:
    with api.client(timeout=60) as http:

        def run_group(size: int) -> tuple[str, float]:
            body = {"workflow": {"group": [{"task": "add", "args": [i, i]} for i in range(size)]}}
            started = time.perf_counter()
            wid = http.post("/workflows", json=body).json()["id"]
            wait_all(lambda: http.get(f"/workflows/{wid}").json()["phase"] == "Succeeded")
            return wid, time.perf_counter() - started

        small, _ = run_group(10)
        large, took = run_group(1000)
        rows.append(("1,000-task group workflow, submit → Succeeded", f"{took:.1f} s"))
        for wid, size in ((small, 10), (large, 1000)):
            samples = [timed(lambda w=wid: engine.status(w)) for _ in range(20)]
            rows.append(
                (f"status read of a {size}-task workflow (median of 20)",
                 f"{1000 * statistics.median(samples):.1f} ms")
            )  # fmt: skip
        chain = {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}
        started = time.perf_counter()
        wids = [
            http.post("/workflows", json={"workflow": chain}).json()["id"] for _ in range(WORKFLOWS)
        ]
        wait_all(
            lambda: all(http.get(f"/workflows/{w}").json()["phase"] == "Succeeded" for w in wids)
        )
        rows.append((f"{WORKFLOWS} two-step workflows via POST /workflows → all Succeeded",
                     f"{time.perf_counter() - started:.1f} s"))  # fmt: skip


def bench_operator(stack: StackEnv, rows: list[tuple[str, str]]) -> None:
    """100 TaskWorkflows applied at once through a real kube-apiserver and the operator."""
    try:
        control_plane = ControlPlane()
    except MissingBinaryError as exc:
        rows.append((f"{WORKFLOWS} TaskWorkflows via kubectl apply", f"not run: {exc}"))
        return
    with control_plane:
        crd = (
            Path(__file__).parents[1]
            / "charts/celery-harder/crds/taskworkflows.celery-harder.io.yaml"
        )
        control_plane.kubectl("apply", "-f", str(crd))
        control_plane.wait_for_crd("taskworkflows.celery-harder.io")
        with running_operator(stack, control_plane.env()):
            chain = {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}
            items = [
                {"apiVersion": "celery-harder.io/v1alpha1", "kind": "TaskWorkflow",
                 "metadata": {"name": f"bench-{i}", "namespace": "default"},
                 "spec": {"workflow": chain}}
                for i in range(WORKFLOWS)
            ]  # fmt: skip
            started = time.perf_counter()
            control_plane.apply(items)

            def all_succeeded() -> bool:
                listed = control_plane.kubectl_json("get", "tw", "-n", "default")["items"]
                phases = [i.get("status", {}).get("phase") for i in listed]
                return phases.count("Succeeded") == WORKFLOWS

            wait_all(all_succeeded)
            rows.append(
                (f"{WORKFLOWS} TaskWorkflows via kubectl apply → all Succeeded (operator)",
                 f"{time.perf_counter() - started:.1f} s")
            )  # fmt: skip


def main() -> int:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="celery-harder-bench-") as tmp:
        workdir = Path(tmp)
        with running_redis(workdir / "redis") as redis_server:
            stack = StackEnv(broker_url=redis_server.url(), workdir=workdir)
            with running_worker(stack, "bench", concurrency=2), running_api(stack) as api:
                engine = WorkflowEngine(create_task_client(Settings(broker_url=redis_server.url())))
                bench_tasks(api, engine, rows)
                bench_workflows(api, engine, rows)
                bench_operator(stack, rows)
    table = ["| measurement | result |", "| --- | --- |"] + [f"| {m} | {r} |" for m, r in rows]
    text = "\n".join([
        "# Benchmark results", "",
        f"`make bench` on {time.strftime('%Y-%m-%d')}: redis-server, one prefork worker "
        "(2 processes), uvicorn, and kube-apiserver with the operator, on loopback, "
        "on a 2-core machine.", "", *table, "",
    ])  # fmt: skip
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
