"""T2: `helm install` of the chart into the real kube-apiserver, helm 4 and helm 3.

KEDA's and the Prometheus Operator's CRDs are loaded from their Go modules (fetched by
scripts/install-test-deps.sh), so the ScaledObject, TriggerAuthentication,
ServiceMonitor and PrometheusRule objects are checked by the API server too. No
controller runs here: the API server accepting every object is what this shows.
"""

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart.chartlib import CASE_FILES, CHART, helm_binary

GOMODCACHE = Path.home() / ".cache" / "celery-harder" / "go" / "mod"
UPSTREAM_CRDS = [
    "github.com/kedacore/keda/v2@*/config/crd/bases/keda.sh_scaledobjects.yaml",
    "github.com/kedacore/keda/v2@*/config/crd/bases/keda.sh_triggerauthentications.yaml",
    "github.com/prometheus-operator/prometheus-operator@*/example/prometheus-operator-crd/"
    "monitoring.coreos.com_servicemonitors.yaml",
    "github.com/prometheus-operator/prometheus-operator@*/example/prometheus-operator-crd/"
    "monitoring.coreos.com_prometheusrules.yaml",
]
CASES = ["defaults", "keda-off", "external-redis", "monitoring-on", "auth-on", "scale-to-zero"]


@pytest.fixture(scope="module")
def upstream_crds(kube_api, taskworkflow_crd) -> Iterator[None]:
    for pattern in UPSTREAM_CRDS:
        found = sorted(GOMODCACHE.glob(pattern))
        if not found:
            pytest.fail(f"{pattern} not in {GOMODCACHE}: run scripts/install-test-deps.sh")
        # Server-side: these CRDs are too large for kubectl's last-applied annotation.
        kube_api.kubectl("apply", "--server-side", "-f", str(found[-1]))
        kube_api.wait_for_crd(yaml.safe_load(found[-1].read_text())["metadata"]["name"])
    kube_api.kubectl("create", "namespace", "monitoring", check=False)  # dashboards go there
    yield


def helm(kube_api, which: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(which), *args, "--kubeconfig", str(kube_api.kubeconfig)],
        capture_output=True, text=True, timeout=300, check=False, env=kube_api.env(),
    )  # fmt: skip


@pytest.mark.parametrize("which", ["helm4", "helm3"])
@pytest.mark.parametrize("case", CASES)
def test_helm_install_is_accepted_by_the_api_server(
    kube_api,
    upstream_crds,
    which: str,
    case: str,
) -> None:
    namespace = f"chart-{uuid.uuid4().hex[:8]}"
    release = "celery-harder"
    installed = helm(
        kube_api, which, "install", release, str(CHART), "-n", namespace, "--create-namespace",
        "-f", str(CASE_FILES[case]),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    manifest = helm(kube_api, which, "get", "manifest", release, "-n", namespace)
    assert manifest.returncode == 0, manifest.stderr
    objects = [d for d in yaml.safe_load_all(manifest.stdout) if d]
    assert len(objects) >= 10, f"{case}: only {len(objects)} objects"
    for obj in objects:
        ns = obj["metadata"].get("namespace", namespace)
        got = kube_api.kubectl(
            "get", obj["kind"], obj["metadata"]["name"], "-n", ns, "-o", "name", check=False
        )
        assert got.returncode == 0, f"{case}: {obj['kind']}/{obj['metadata']['name']}: {got.stderr}"
    kinds = {o["kind"] for o in objects}
    if case in ("defaults", "scale-to-zero"):
        assert {"ScaledObject", "TriggerAuthentication"} <= kinds
    if case == "monitoring-on":
        assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    uninstalled = helm(kube_api, which, "uninstall", release, "-n", namespace)
    assert uninstalled.returncode == 0, uninstalled.stderr
