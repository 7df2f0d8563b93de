"""T2: deleting a CronTaskWorkflow deletes its runs, by Kubernetes' garbage collector.

A control plane of its own, with the OwnerReferencesPermissionEnforcement admission
plugin on (setting blockOwnerDeletion then takes update on the owner's finalizers) and
kube-controller-manager running only its garbage collector. The operator runs with
exactly the chart's RBAC, as in test_operator_rbac.py.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.conftest import CRD_NAME, CRD_PATH, CRON_CRD_NAME, CRON_CRD_PATH
from tests.k8s.test_operator import wait_final
from tests.support import cron
from tests.support.cron import StoppedClock, minute_after, run_names, wait_for
from tests.support.garbage_collector import running_garbage_collector
from tests.support.kube import ControlPlane
from tests.support.operator_process import running_operator
from tests.support.operator_rbac import as_chart_operator
from tests.support.stack import StackEnv, Worker

STRICT_OWNERS = "--enable-admission-plugins=OwnerReferencesPermissionEnforcement"


@pytest.fixture(scope="module")
def gc_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane with a garbage collector; the CRDs are there before it starts."""
    with ControlPlane(extra_apiserver_args=(STRICT_OWNERS,)) as kube:
        for path, name in ((CRD_PATH, CRD_NAME), (CRON_CRD_PATH, CRON_CRD_NAME)):
            kube.kubectl("apply", "-f", str(path))
            kube.wait_for_crd(name)
        with running_garbage_collector(kube, tmp_path_factory.mktemp("gc")):
            yield kube


def gone(kube: ControlPlane, kind: str, name: str, ns: str) -> bool:
    proc = kube.kubectl("get", kind, name, "-n", ns, "--ignore-not-found", "-o", "name")
    return proc.stdout.strip() == ""


def test_deleting_a_schedule_deletes_its_runs(
    gc_kube: ControlPlane, stack: StackEnv, worker: Worker, tmp_path: Path
) -> None:
    system = f"op-{uuid.uuid4().hex[:8]}"
    kube_env = as_chart_operator(gc_kube, system, tmp_path / "operator.kubeconfig")
    ns = gc_kube.create_namespace(f"user-{uuid.uuid4().hex[:8]}")
    clock = StoppedClock(tmp_path / "now")
    clock.hold_before(cron.real_now())
    env = cron.operator_env(clock)
    with running_operator(stack, kube_env, env) as operator:
        names = ("background", "foreground")
        for name in names:
            gc_kube.apply(cron.ctw(name, {"task": "add", "args": [1, 2]}), "-n", ns)
        created = cron.created(cron.get_ctw(gc_kube, ns, names[0]))
        for step in (1, 2):
            clock.set(minute_after(created, step))
            wait_for(f"{step} runs each", lambda s=step: all(
                len(run_names(gc_kube, ns, n)) == s for n in names))  # fmt: skip
        for name in names:
            for run in run_names(gc_kube, ns, name):
                assert wait_final(gc_kube, ns, run)["phase"] == "Succeeded"
        # kubectl's default: the owner goes at once, the collector deletes the runs after
        gc_kube.kubectl("delete", "ctw", "background", "-n", ns, "--wait=true", "--timeout=60s")
        wait_for("the background runs deleted", lambda: run_names(gc_kube, ns, "background") == [])
        # foreground: the owner stays (deletionTimestamp set) until the runs are gone,
        # the blockOwnerDeletion of their owner references at work
        gc_kube.kubectl("delete", "ctw", "foreground", "-n", ns, "--cascade=foreground",
                        "--wait=true", "--timeout=60s")  # fmt: skip
        assert run_names(gc_kube, ns, "foreground") == []
        assert gone(gc_kube, "ctw", "foreground", ns)
        log = (stack.workdir / f"operator-{operator.starts}.log").read_text()
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]
