"""T2: the operator works with exactly the RBAC the chart grants it.

The chart's operator ServiceAccount and ClusterRole are rendered with helm, applied to
the real kube-apiserver, and the operator runs with that ServiceAccount's token:
a permission the chart forgot shows up as a workflow that never finishes.
"""

import uuid
from pathlib import Path

from tests.k8s.test_operator import events, tw, wait_gone, watch_final
from tests.support.operator_process import running_operator
from tests.support.operator_rbac import as_chart_operator
from tests.support.stack import StackEnv, Worker


def test_operator_runs_with_only_the_charts_rbac(
    kube_api,
    taskworkflow_crd,
    stack: StackEnv,
    worker: Worker,
    tmp_path: Path,
) -> None:
    system = f"op-{uuid.uuid4().hex[:8]}"
    kube_env = as_chart_operator(kube_api, system, tmp_path / "operator.kubeconfig")
    user_ns = kube_api.create_namespace(f"user-{uuid.uuid4().hex[:8]}")
    with running_operator(stack, kube_env) as operator:
        workflow = {"chain": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [3]}]}
        kube_api.apply(tw("rbac-chain", workflow, ttlSecondsAfterFinished=1), "-n", user_ns)
        status = watch_final(kube_api, user_ns, "rbac-chain")
        assert (status["phase"], status["result"]) == ("Succeeded", 12)
        assert "Dispatched" in events(kube_api, user_ns, "rbac-chain")
        wait_gone(kube_api, user_ns, "rbac-chain", timeout=30)  # the TTL delete was allowed
        log = (stack.workdir / f"operator-{operator.starts}.log").read_text()
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]
