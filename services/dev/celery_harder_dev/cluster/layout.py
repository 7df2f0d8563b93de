"""Where the local node keeps its files and which addresses and ports it uses."""

import os
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.35.4"
NODE_NAME = "celery-harder-node"
# The namespace in which the node's own add-ons (CoreDNS, storage) run.
SYSTEM_NAMESPACE = "kube-system"


def cache_root() -> Path:
    """The cache every build script writes to (`CELERY_HARDER_CACHE`)."""
    return Path(os.environ.get("CELERY_HARDER_CACHE", Path.home() / ".cache" / "celery-harder"))


@dataclass(frozen=True)
class Network:
    """Addresses of the node: one bridge of its own, nothing routed off the machine."""

    bridge: str = "chbr0"
    # The bridge's own address is the pods' gateway and the node's InternalIP.
    node_ip: str = "10.244.0.1"
    pod_subnet: str = "10.244.0.0/24"
    # Routed `unreachable` beneath the bridge's /24, so a stray pod address fails here.
    pod_range: str = "10.244.0.0/16"
    service_range: str = "10.96.0.0/16"
    kubernetes_service_ip: str = "10.96.0.1"
    dns_service_ip: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class Ports:
    """Fixed ports: the node is one per machine, and a fixed address keeps kubeconfigs valid."""

    apiserver: int = 6443
    etcd_client: int = 23790
    etcd_peer: int = 23800
    kubelet: int = 10250
    kubelet_healthz: int = 10248
    controller_manager: int = 10257
    scheduler: int = 10259
    proxy_healthz: int = 10256
    proxy_metrics: int = 10249


@dataclass(frozen=True)
class Layout:
    """Every path the node uses, under one root.

    `state/` lives as long as the node runs and is removed by `down`; `containerd/`
    (the image store) is kept, so that images need not be imported again.
    """

    root: Path

    @classmethod
    def default(cls) -> "Layout":
        """The layout under `CELERY_HARDER_CLUSTER_DIR`, else the cache."""
        configured = os.environ.get("CELERY_HARDER_CLUSTER_DIR")
        return cls(Path(configured) if configured else cache_root() / "cluster")

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        # Beside state/, so that `down` keeps the logs of the run that just ended.
        return self.root / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def config(self) -> Path:
        return self.state / "config"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def pod_logs(self) -> Path:
        # Under logs/, so that a failed `up` leaves the containers' output to read.
        return self.logs / "pods"

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def volumes(self) -> Path:
        """Where the local-path provisioner makes PersistentVolumes."""
        return self.state / "volumes"

    @property
    def host_record(self) -> Path:
        """What the host looked like before `up`, so that `down` can restore it."""
        return self.root / "host-before.json"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"
