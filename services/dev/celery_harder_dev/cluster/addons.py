"""The node's own add-ons, applied once the node is Ready: DNS, storage, KEDA."""

import string
from collections.abc import Callable
from importlib import resources

from celery_harder_dev.cluster.kubectl import Kubectl
from celery_harder_dev.cluster.layout import SYSTEM_NAMESPACE, Layout, Network

COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.15.0"


def manifest(name: str, **values: str) -> str:
    """A YAML file of this package with its ${placeholders} filled (all must be given)."""
    text = resources.files(__package__).joinpath("manifests", name).read_text()
    return string.Template(text).substitute(values)


def rollout(kubectl: Kubectl, namespace: str, kind_name: str, timeout: int = 180) -> None:
    """Wait until a Deployment or DaemonSet has rolled out."""
    kubectl(
        "rollout", "status", "-n", namespace, kind_name, f"--timeout={timeout}s",
        timeout=timeout + 30,
    )  # fmt: skip


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


def install_all(
    kubectl: Kubectl, layout: Layout, network: Network, log: Callable[[str], None]
) -> None:
    """Every add-on, each waited for."""
    log("CoreDNS")
    install_coredns(kubectl, network)
