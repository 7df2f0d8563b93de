"""The node's own add-ons, applied once the node is Ready: DNS, storage, KEDA."""

import json
import string
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from celery_harder_dev.cluster.kubectl import Kubectl
from celery_harder_dev.cluster.layout import SYSTEM_NAMESPACE, Layout, Network, cache_root

# The versions scripts/build-node.sh builds and scripts/build-cluster-images.sh packages.
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.15.0"
LOCAL_PATH_MODULE = ("github.com/rancher/local-path-provisioner", "v0.0.30")
LOCAL_PATH_IMAGE = "docker.io/rancher/local-path-provisioner:v0.0.30"
HELPER_IMAGE = "docker.io/library/busybox:latest"
KEDA_MODULE = ("github.com/kedacore/keda/v2", "v2.21.0")
KEDA_IMAGES = {
    "keda-operator": "ghcr.io/kedacore/keda:2.21.0",
    "keda-metrics-apiserver": "ghcr.io/kedacore/keda-metrics-apiserver:2.21.0",
}
KEDA_NAMESPACE = "keda"
STORAGE_NAMESPACE = "local-path-storage"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


class AddonError(RuntimeError):
    """An add-on's upstream manifests are missing or not as expected."""


def manifest(name: str, **values: str) -> str:
    """A YAML file of this package with its ${placeholders} filled (all must be given)."""
    text = resources.files(__package__).joinpath("manifests", name).read_text()
    return string.Template(text).substitute(values)


def module_dir(module: str, version: str) -> Path:
    """A Go module's directory in the cache the build scripts fill (case-encoded path)."""
    encoded = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    path = cache_root() / "go" / "mod" / f"{encoded}@{version}"
    if not path.is_dir():
        raise AddonError(f"{path} is missing: scripts/build-node.sh downloads {module}@{version}")
    return path


def rollout(kubectl: Kubectl, namespace: str, kind_name: str, timeout: int = 180) -> None:
    """Wait until a Deployment or DaemonSet has rolled out."""
    kubectl(
        "rollout", "status", "-n", namespace, kind_name, f"--timeout={timeout}s",
        timeout=timeout + 30,
    )  # fmt: skip


def containers(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The containers of a Deployment (none for any other kind)."""
    if document.get("kind") == "Deployment":
        yield from document["spec"]["template"]["spec"]["containers"]


def install_coredns(kubectl: Kubectl, network: Network) -> None:
    """CoreDNS behind the cluster DNS address, answering cluster names only."""
    kubectl.apply(
        manifest(
            "coredns.yaml",
            image=COREDNS_IMAGE,
            cluster_domain=network.cluster_domain,
            dns_service_ip=network.dns_service_ip,
        )
    )
    rollout(kubectl, SYSTEM_NAMESPACE, "deployment/coredns")


def local_path_documents(upstream: str, volumes: Path) -> list[dict[str, Any]]:
    """The provisioner's own deploy/local-path-storage.yaml, aimed at `volumes`, default class.

    Changed from upstream: local image names that are never pulled, volumes under the
    node's state directory (removed by `down`), and the StorageClass marked default so
    that a PVC without a class (the chart's Redis) binds.
    """
    documents = [d for d in yaml.safe_load_all(upstream) if d]
    for document in documents:
        kind = document["kind"]
        if kind == "StorageClass":
            document["metadata"].setdefault("annotations", {})[DEFAULT_CLASS] = "true"
        elif kind == "ConfigMap":
            data = document["data"]
            config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                                       "paths": [str(volumes)]}]}  # fmt: skip
            data["config.json"] = json.dumps(config)
            helper = yaml.safe_load(data["helperPod.yaml"])
            for container in helper["spec"]["containers"]:
                container["image"] = HELPER_IMAGE
                container["imagePullPolicy"] = "Never"
            data["helperPod.yaml"] = yaml.safe_dump(helper)
        for container in containers(document):
            container["image"] = LOCAL_PATH_IMAGE
            container["imagePullPolicy"] = "Never"
    kinds = {d["kind"] for d in documents}
    if not {"Deployment", "StorageClass", "ConfigMap"} <= kinds:
        raise AddonError(f"local-path-storage.yaml lacks a kind it should have: {sorted(kinds)}")
    return documents


def install_local_path(kubectl: Kubectl, layout: Layout) -> None:
    """local-path-provisioner as the default StorageClass (kind uses the same one)."""
    upstream = (module_dir(*LOCAL_PATH_MODULE) / "deploy" / "local-path-storage.yaml").read_text()
    layout.volumes.mkdir(parents=True, exist_ok=True)
    kubectl.apply(local_path_documents(upstream, layout.volumes))
    rollout(kubectl, STORAGE_NAMESPACE, "deployment/local-path-provisioner")


def keda_documents(rendered: str) -> list[dict[str, Any]]:
    """KEDA's config/minimal (CRDs, RBAC, operator, metrics API server, APIService), local images.

    Changed from upstream: the images are the locally built ones at the module's version
    (upstream says `:main`, pulled Always), and the requests fit a 2-CPU node.
    """
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    seen = set()
    for document in documents:
        name = document["metadata"]["name"]
        for container in containers(document):
            if name not in KEDA_IMAGES:
                raise AddonError(f"KEDA's config/minimal has an unexpected Deployment {name}")
            seen.add(name)
            container["image"] = KEDA_IMAGES[name]
            container["imagePullPolicy"] = "Never"
            container["resources"]["requests"] = {"cpu": "20m", "memory": "64Mi"}
    if seen != set(KEDA_IMAGES):
        raise AddonError(f"KEDA's config/minimal lacks {sorted(set(KEDA_IMAGES) - seen)}")
    return documents


def install_keda(kubectl: Kubectl) -> None:
    """KEDA from its module's own kustomization, rendered by kubectl's built-in kustomize."""
    source = module_dir(*KEDA_MODULE) / "config" / "minimal"
    rendered = kubectl("kustomize", str(source)).stdout
    # Server-side: KEDA's CRDs are larger than client-side apply's annotation allows.
    kubectl.apply(keda_documents(rendered), "--server-side", "--force-conflicts")
    for deployment in KEDA_IMAGES:
        rollout(kubectl, KEDA_NAMESPACE, f"deployment/{deployment}", timeout=300)
    # The operator writes the metrics server's certificate, then the APIService's CA.
    kubectl(
        "wait", "--for=condition=Available", "apiservice/v1beta1.external.metrics.k8s.io",
        "--timeout=180s", timeout=210,
    )  # fmt: skip


def install_all(
    kubectl: Kubectl, layout: Layout, network: Network, log: Callable[[str], None]
) -> None:
    """Every add-on, each waited for."""
    log("CoreDNS")
    install_coredns(kubectl, network)
    log("local-path-provisioner (default StorageClass)")
    install_local_path(kubectl, layout)
    log("KEDA")
    install_keda(kubectl)
