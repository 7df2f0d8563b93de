"""The command line of every process of the node, in start order."""

from dataclasses import dataclass, field

from celery_harder_dev.cluster.binaries import Binaries
from celery_harder_dev.cluster.layout import NODE_NAME, Layout, Network, Ports

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Component:
    """One long-running process of the node."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def etcd(layout: Layout, ports: Ports, bins: Binaries) -> Component:
    """etcd on loopback; its data lives only as long as the node."""
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return Component(
        "etcd",
        [
            str(bins.etcd),
            "--name=node",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=node={peer}",
            "--initial-cluster-state=new",
            # A throwaway store: durability costs fsyncs the node never needs.
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ],
    )


def apiserver(layout: Layout, network: Network, ports: Ports, bins: Binaries) -> Component:
    """kube-apiserver on the node address, with the aggregation layer for KEDA's metrics."""
    pki = layout.pki
    return Component(
        "kube-apiserver",
        [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            f"--advertise-address={network.node_ip}",
            f"--bind-address={network.node_ip}",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer=https://kubernetes.default.svc.{network.cluster_domain}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={network.service_range}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            # Without it `kubectl logs` and `exec` resolve the node's name through DNS.
            "--kubelet-preferred-address-types=InternalIP",
            # The aggregation layer, for KEDA's external.metrics.k8s.io APIService.
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # Reach aggregated APIs at their pod address, not through a ClusterIP.
            "--enable-aggregator-routing=true",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ],
    )


def controller_manager(layout: Layout, network: Network, ports: Ports, bins: Binaries) -> Component:
    """kube-controller-manager: Deployments, the HPA, service accounts, garbage collection."""
    pki = layout.pki
    kubeconfig = layout.config / "controller-manager.kubeconfig"
    return Component(
        "kube-controller-manager",
        [
            str(bins.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={network.service_range}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--v=1",
        ],
    )


def scheduler(layout: Layout, ports: Ports, bins: Binaries) -> Component:
    """kube-scheduler."""
    kubeconfig = layout.config / "scheduler.kubeconfig"
    return Component(
        "kube-scheduler",
        [
            str(bins.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.scheduler}",
            "--leader-elect=false",
            "--v=1",
        ],
    )


def containerd(layout: Layout, bins: Binaries) -> Component:
    """containerd, finding its runc shim through PATH."""
    return Component(
        "containerd",
        [str(bins.containerd), f"--config={layout.config / 'containerd.toml'}"],
        env={"PATH": f"{bins.containerd.parent}:{SYSTEM_PATH}"},
    )


def kubelet(layout: Layout, network: Network, bins: Binaries) -> Component:
    """kubelet registering the one node."""
    return Component(
        "kubelet",
        [
            str(bins.kubelet),
            f"--config={layout.config / 'kubelet.yaml'}",
            f"--kubeconfig={layout.config / 'kubelet.kubeconfig'}",
            f"--root-dir={layout.kubelet_root}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={network.node_ip}",
            "--v=1",
        ],
    )


def kube_proxy(layout: Layout, bins: Binaries) -> Component:
    """kube-proxy in nftables mode."""
    return Component(
        "kube-proxy",
        [str(bins.kube_proxy), f"--config={layout.config / 'kube-proxy.yaml'}", "--v=1"],
    )
