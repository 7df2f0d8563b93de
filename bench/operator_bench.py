"""B6, B6b, B6c: TaskWorkflows through a real kube-apiserver (T2) and the kopf operator.

The control plane is tests/support/kube.py's (etcd + kube-apiserver on loopback, built
by scripts/build-control-plane.sh), the operator is `kopf run` as users run it
(tests/support/operator_process.py), with the tests' 0.5 s status poll. Completion is
read with `kubectl get tw -o json` and, for the POST /workflows baseline, with
WorkflowEngine.status; both polled every POLL seconds.
"""

import time
from pathlib import Path
from typing import Any

import httpx

from bench.procs import wait_for
from bench.sizes import Size
from bench.stats import Figure, Results, Row, check, ratios
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder_dev.stack import RedisServer, StackEnv, running_api, running_worker
from tests.support.kube import ControlPlane
from tests.support.operator_process import running_operator

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "charts/celery-harder/crds/taskworkflows.celery-harder.io.yaml"
POLL = 0.25
TIMEOUT = 900.0
ARGO_DEFAULT, ARGO_TUNED = 270.0, 810.0  # workflows per minute, Argo Workflows' published figures
TWO_STEPS = {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}


def long_chain(steps: int) -> dict[str, Any]:
    return {
        "chain": [{"task": "add", "args": [1, 1]}] + [{"task": "add", "args": [1]}] * (steps - 1)
    }


def resources(prefix: str, count: int, workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "celery-harder.io/v1alpha1",
            "kind": "TaskWorkflow",
            "metadata": {"name": f"{prefix}-{i}", "namespace": "default"},
            "spec": {"workflow": workflow},
        }
        for i in range(count)
    ]


def through_operator(cp: ControlPlane, items: list[dict[str, Any]]) -> float:
    """Seconds from `kubectl apply` until every resource is Succeeded; then deleted."""
    names = {i["metadata"]["name"] for i in items}
    started = time.perf_counter()
    cp.apply(items)

    def all_succeeded() -> bool:
        listed = cp.kubectl_json("get", "tw", "-n", "default")["items"]
        phases = {
            i["metadata"]["name"]: i.get("status", {}).get("phase")
            for i in listed
            if i["metadata"]["name"] in names
        }
        if "Failed" in phases.values():
            raise RuntimeError(f"a TaskWorkflow failed: {phases}")
        return len(phases) == len(names) and set(phases.values()) == {"Succeeded"}

    wait_for(all_succeeded, f"{len(names)} TaskWorkflows", TIMEOUT)
    took = time.perf_counter() - started
    cp.kubectl("delete", "tw", "--all", "-n", "default", "--wait=true", timeout=TIMEOUT)
    return took


def through_api(http: httpx.Client, engine: WorkflowEngine, count: int,
                workflow: dict[str, Any]) -> float:  # fmt: skip
    """Seconds from the first POST /workflows until every workflow is Succeeded."""
    started = time.perf_counter()
    ids = []
    for _ in range(count):
        answer = http.post("/workflows", json={"workflow": workflow})
        answer.raise_for_status()
        ids.append(answer.json()["id"])

    def all_succeeded() -> bool:
        return all((s := engine.status(w)) is not None and s.phase == "Succeeded" for w in ids)

    wait_for(all_succeeded, f"{count} workflows", TIMEOUT)
    return time.perf_counter() - started


def run(server: RedisServer, workdir: Path, size: Size) -> Results:
    stack = StackEnv(broker_url=server.url(0), workdir=workdir / "b6")
    stack.workdir.mkdir(parents=True, exist_ok=True)
    n, steps = size.workflows, size.chain_steps
    op: list[float] = []
    api_times: list[float] = []
    chain_times: list[float] = []
    one_times: list[float] = []
    with (
        ControlPlane() as cp,
        running_worker(stack, "b6", concurrency=size.concurrency),
        running_api(stack, auth=False) as api,
        api.client(timeout=60) as http,
    ):
        cp.kubectl("apply", "-f", str(CRD))
        cp.wait_for_crd("taskworkflows.celery-harder.io")
        engine = WorkflowEngine(create_task_client(Settings(broker_url=server.url(0))))
        with running_operator(stack, cp.env()):
            through_operator(cp, resources("warmup", 2, TWO_STEPS))
            for rep in range(size.reps):
                op.append(through_operator(cp, resources(f"b6-{rep}", n, TWO_STEPS)))
                api_times.append(through_api(http, engine, n, TWO_STEPS))
                chain_times.append(
                    through_operator(cp, resources(f"c-{rep}", 1, long_chain(steps)))
                )
                one_times.append(through_operator(cp, resources(f"o-{rep}", 1, long_chain(1))))
        engine.client.app.close()
    per_min = [60 * n / t for t in op]
    argo = [ARGO_DEFAULT] * len(per_min)
    per_step = [1000 * (c - o) / (steps - 1) for c, o in zip(chain_times, one_times, strict=True)]
    one_ms = [1000 * o for o in one_times]
    results = Results()
    results.rows += [
        Row("B6", f"{n} two-step TaskWorkflows, kubectl apply → all Succeeded (operator)", "s",
            Figure.of(op), f"the same {n} via POST /workflows", ratios(op, api_times),
            Figure.of(api_times)),
        Row("B6b", "TaskWorkflows completed per minute through the API server", "wf/min",
            Figure.of(per_min), "Argo Workflows' published 270 wf/min (default; 810 tuned)",
            ratios(per_min, argo), Figure.of(argo)),
        Row("B6c", f"per-step overhead of a {steps}-step chain TaskWorkflow", "ms/step",
            Figure.of(per_step), "a one-task TaskWorkflow, apply → Succeeded",
            ratios(per_step, one_ms), Figure.of(one_ms), "ms"),
    ]  # fmt: skip
    results.targets += [
        check("B6", f"{n} TaskWorkflows ≤ 2× the same via POST /workflows",
              ratios(op, api_times), "×", lambda x: x <= 2),
        check("B6b", "≥ 1,000 TaskWorkflows per minute", Figure.of(per_min), " wf/min",
              lambda x: x >= 1000, note=f"Argo {ARGO_DEFAULT:.0f} default, {ARGO_TUNED:.0f} tuned"),
        check("B6c", f"per-step overhead of a {steps}-step chain ≤ 10 ms/step",
              Figure.of(per_step), " ms/step", lambda x: x <= 10),
    ]  # fmt: skip
    results.notes.append(
        "B6: the operator with the tests' 0.5 s status poll, TaskWorkflows in one namespace, "
        "deleted (finalizers released) after every repetition; the per-minute figure of B6b "
        "comes from B6's runs; Argo's figures are published ones, not measured here. B6c: "
        f"(chain of {steps} − chain of 1) ÷ {steps - 1}, each applied alone."
    )
    return results
