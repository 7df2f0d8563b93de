"""T2: bench/operator_rows.py's B6, B6b, B6c and B6d run, at bench/sizes.py's tiny size.

The harness's tiny run (tests/bench/test_bench_runs.py) runs the same functions on a rig
of its own and checks only that every row and mark is there. These run each row once on
the tests' shared fixtures (the tests' 0.5 s operator poll), add the `kubectl apply`
variant of B6, and check what holds at any size: every workflow ends Succeeded, and no
finished resource is written during B6d's window. They time nothing.
CELERY_HARDER_BENCH_OPERATOR_SIZE=full runs the real sizes.
"""

import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import operator_rows as rows
from bench.sizes import SIZES
from celery_harder_dev.stack import running_redis
from tests.support.operator_process import running_operator
from tests.support.stack import ApiServer, StackEnv, Worker

SIZE = SIZES[os.environ.get("CELERY_HARDER_BENCH_OPERATOR_SIZE", "tiny")]


@pytest.fixture(scope="module")
def rig(
    kube_api, taskworkflow_crd, stack: StackEnv, worker: Worker, api: ApiServer
) -> Iterator[rows.OperatorRig]:
    kube = rows.Kube(kube_api)
    with running_operator(stack, kube_api.env()) as operator:
        yield rows.OperatorRig(kube_api, kube, stack, api, operator)
    kube.close()


def positive(*values: float) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def test_b6_created_and_posted(rig: rows.OperatorRig) -> None:
    found = rows.b6(rig, SIZE.workflows)
    assert positive(found["operator_s"], found["api_s"], found["ratio"]), found
    by_kubectl = rows.b6(rig, SIZE.workflows, kubectl=True)
    assert positive(by_kubectl["ratio"]), by_kubectl


def test_b6b_completed_per_minute(rig: rows.OperatorRig) -> None:
    found = rows.b6b(rig, SIZE.throughput)
    assert positive(found["per_minute"]), found


def test_b6c_chain_against_one_task(rig: rows.OperatorRig) -> None:
    found = rows.b6c(rig, SIZE.chain_steps)
    assert positive(found["one_s"], found["chain_s"]), found
    assert math.isfinite(found["ms_per_step"]) and math.isfinite(found["api_ms_per_step"])


def test_b6d_finished_resources_are_left_alone(rig: rows.OperatorRig) -> None:
    found = rows.b6d(rig, SIZE.finished, SIZE.window)
    assert found["written"] == 0, found
    assert positive(found["ratio"]) and found["idle_cpu_s"] >= 0, found


@pytest.fixture(scope="module")
def own_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rows.OperatorRig]:
    """The bench's rig: a control plane, Redis, worker, API and operator of its own."""
    workdir: Path = tmp_path_factory.mktemp("writes")
    with running_redis(workdir / "redis") as server, rows.operator_rig(server, workdir) as rig:
        yield rig


def test_a_small_workflow_costs_the_api_server_five_writes(own_rig: rows.OperatorRig) -> None:
    """B6's write budget per TaskWorkflow: its create, kopf's finalizer PATCH, the first
    read's /status PATCH and two Events (Dispatched, then the final phase's)."""
    writes = rows.b6_writes(own_rig, SIZE.workflows)
    status = writes.pop("PATCH taskworkflows/status", 0.0)
    finalizer = writes.pop("PATCH taskworkflows", 0.0)
    assert writes == {"POST taskworkflows": 1.0, "POST events": 2.0}, writes
    # Slack for a run that outlasts the create handler's wait (a `Running` /status PATCH
    # before the final one) and for a handler kopf retried (its progress annotation
    # written, then purged). A write added to every resource moves a figure by 1.
    assert 1.0 <= finalizer <= 1.5, finalizer
    assert 1.0 <= status <= 2.0, status
