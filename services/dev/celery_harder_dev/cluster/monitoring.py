"""Prometheus Operator and one Prometheus on the node, to scrape what ServiceMonitors select.

Not part of `make cluster` (kind's path uses kube-prometheus-stack): the T4-local
monitoring test installs it. Everything comes from the module scripts/build-node.sh
builds the operator from: its CRDs and example RBAC, with the locally built images.
"""

import json
from pathlib import Path
from typing import Any

import yaml

from celery_harder_dev.cluster.addons import AddonError, module_dir, rollout
from celery_harder_dev.cluster.kubectl import Kubectl

PROMETHEUS_OPERATOR_MODULE = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
OPERATOR_IMAGE = "quay.io/prometheus-operator/prometheus-operator:v0.85.0"
RELOADER_IMAGE = "quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0"
# Built from its module by scripts/build-node.sh with Kubernetes service discovery only
# (Debian's prometheus, which the T1 tests run, is built without it).
PROMETHEUS_VERSION = "v3.5.0"
PROMETHEUS_IMAGE = f"quay.io/prometheus/prometheus:{PROMETHEUS_VERSION}"
NAMESPACE = "monitoring"
PROMETHEUS_NAME = "celery-harder-test"


def _documents(directory: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def operator_documents(example: Path) -> list[dict[str, Any]]:
    """Upstream's example RBAC and Deployment, in NAMESPACE, with the local images.

    Changed from upstream: the namespace, the images (never pulled), no kubelet
    Service (nothing here scrapes kubelets) and requests that fit a 2-CPU node.
    """
    docs = _documents(example / "rbac" / "prometheus-operator")
    docs += _documents(example / "rbac" / "prometheus")
    # The example's own ServiceMonitor and Prometheus are replaced by prometheus_resource().
    docs = [d for d in docs if d["kind"] not in ("ServiceMonitor", "Prometheus")]
    found = False
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            for subject in doc.get("subjects", []):
                subject["namespace"] = NAMESPACE
            continue
        doc["metadata"]["namespace"] = NAMESPACE
        if doc["kind"] == "Deployment":
            found = True
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            container["image"] = OPERATOR_IMAGE
            container["imagePullPolicy"] = "Never"
            container["args"] = [f"--prometheus-config-reloader={RELOADER_IMAGE}"]
            container["resources"] = {"requests": {"cpu": "20m", "memory": "64Mi"}}
    if not found:
        raise AddonError(f"{example}/rbac/prometheus-operator has no Deployment")
    return docs


def prometheus_resource(scrape_interval: str = "5s") -> dict[str, Any]:
    """A Prometheus that selects every ServiceMonitor and PrometheusRule in the cluster."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS_NAME, "namespace": NAMESPACE},
        "spec": {
            "image": PROMETHEUS_IMAGE,
            "version": PROMETHEUS_VERSION,
            "imagePullPolicy": "Never",
            "replicas": 1,
            "serviceAccountName": "prometheus",
            "serviceMonitorSelector": {},
            "serviceMonitorNamespaceSelector": {},
            "ruleSelector": {},
            "ruleNamespaceSelector": {},
            "scrapeInterval": scrape_interval,
            "evaluationInterval": scrape_interval,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
        },
    }


def install_prometheus_operator(kubectl: Kubectl) -> None:
    """The monitoring.coreos.com CRDs, the operator, and one Prometheus, each waited for."""
    example = module_dir(*PROMETHEUS_OPERATOR_MODULE) / "example"
    # Applied as files: PyYAML reads their `- =` enum entries as a YAML value tag.
    # Server-side: these CRDs are larger than client-side apply's annotation allows.
    crds = str(example / "prometheus-operator-crd")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", crds, timeout=120)
    kubectl.wait_established("-f", crds)
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    kubectl.apply(operator_documents(example))
    rollout(kubectl, NAMESPACE, "deployment/prometheus-operator", timeout=300)
    kubectl.apply([prometheus_resource()])


def prometheus_pod_ip(kubectl: Kubectl) -> str | None:
    """The Prometheus pod's IP once it is Ready, else None."""
    out = kubectl(
        "get", "pod", "-n", NAMESPACE, f"prometheus-{PROMETHEUS_NAME}-0", "-o", "json",
        check=False,
    )  # fmt: skip
    if out.returncode != 0:
        return None
    pod = json.loads(out.stdout)
    ready = any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )
    return pod["status"].get("podIP") if ready else None
