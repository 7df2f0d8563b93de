"""T2: the operator works with exactly the RBAC the chart grants it.

The chart's operator ServiceAccount and ClusterRole are rendered with helm, applied to
the real kube-apiserver, and the operator runs with that ServiceAccount's token:
a permission the chart forgot shows up as a workflow that never finishes.
"""

import subprocess
import uuid
from pathlib import Path

import yaml

from tests.chart.chartlib import CHART, helm_binary
from tests.k8s.test_operator import events, tw, wait_gone, watch_final
from tests.support.operator_process import running_operator
from tests.support.stack import StackEnv, Worker


def render_operator_rbac(namespace: str) -> str:
    return subprocess.run(
        [helm_binary("helm4"), "template", "celery-harder", str(CHART), "-n", namespace,
         "--show-only", "templates/operator/serviceaccount.yaml",
         "--show-only", "templates/operator/rbac.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def token_kubeconfig(kube_api, namespace: str, account: str, path: Path) -> Path:
    token = kube_api.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "t", "cluster": {
            "server": kube_api.server, "certificate-authority": str(kube_api.pki / "ca.crt")}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "operator"}}],
        "current-context": "t",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def test_operator_runs_with_only_the_charts_rbac(
    kube_api,
    taskworkflow_crd,
    stack: StackEnv,
    worker: Worker,
    tmp_path: Path,
) -> None:
    system = kube_api.create_namespace(f"op-{uuid.uuid4().hex[:8]}")
    rbac = render_operator_rbac(system)
    kube_api.kubectl("apply", "-n", system, "-f", "-", input=rbac)
    (account,) = [d["metadata"]["name"] for d in yaml.safe_load_all(rbac)
                  if d and d["kind"] == "ServiceAccount"]  # fmt: skip
    kubeconfig = token_kubeconfig(kube_api, system, account, tmp_path / "operator.kubeconfig")
    user_ns = kube_api.create_namespace(f"user-{uuid.uuid4().hex[:8]}")
    with running_operator(stack, {"KUBECONFIG": str(kubeconfig)}) as operator:
        workflow = {"chain": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [3]}]}
        kube_api.apply(tw("rbac-chain", workflow, ttlSecondsAfterFinished=1), "-n", user_ns)
        status = watch_final(kube_api, user_ns, "rbac-chain")
        assert (status["phase"], status["result"]) == ("Succeeded", 12)
        assert "Dispatched" in events(kube_api, user_ns, "rbac-chain")
        wait_gone(kube_api, user_ns, "rbac-chain", timeout=30)  # the TTL delete was allowed
        log = (stack.workdir / f"operator-{operator.starts}.log").read_text()
    assert "Forbidden" not in log and " 403" not in log, log[-3000:]
