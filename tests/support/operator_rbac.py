"""The operator's identity as the chart gives it: its ServiceAccount, RBAC, and a token.

In a cluster the operator's pod talks to the API server with its ServiceAccount's
token, limited by the chart's ClusterRole. tests/k8s/test_operator_rbac.py runs the
operator that way to prove the RBAC is enough; the benchmark (bench/operator_rows.py)
runs it that way because that is what users run: the admin client certificate of the
T2 control plane costs the API server an x509 verification on every request.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.chart.chartlib import CHART, helm_binary
from tests.support.kube import ControlPlane

# The token lives as long as the API server allows by default (1 h): longer than any
# one test or benchmark group that uses it.
TOKEN_DURATION = "1h"


def render_operator_rbac(namespace: str) -> str:
    """The chart's operator ServiceAccount and RBAC, rendered for `namespace`."""
    return subprocess.run(
        [helm_binary("helm4"), "template", "celery-harder", str(CHART), "-n", namespace,
         "--show-only", "templates/operator/serviceaccount.yaml",
         "--show-only", "templates/operator/rbac.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def token_kubeconfig(cp: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a fresh token."""
    token = cp.kubectl(
        "create", "token", account, "-n", namespace, f"--duration={TOKEN_DURATION}"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "t", "cluster": {
            "server": cp.server, "certificate-authority": str(cp.pki / "ca.crt")}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "operator"}}],
        "current-context": "t",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def as_chart_operator(cp: ControlPlane, namespace: str, path: Path) -> dict[str, str]:
    """Apply the chart's operator RBAC in `namespace` (made here); the operator's KUBECONFIG."""
    cp.kubectl("create", "namespace", namespace)
    rbac = render_operator_rbac(namespace)
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=rbac)
    (account,) = [d["metadata"]["name"] for d in yaml.safe_load_all(rbac)
                  if d and d["kind"] == "ServiceAccount"]  # fmt: skip
    return {"KUBECONFIG": str(token_kubeconfig(cp, namespace, account, path))}
