"""The node's configuration files, rendered as data: kubeconfigs, containerd, kubelet, CNI."""

from pathlib import Path
from typing import Any

from celery_harder_dev.cluster.layout import NODE_NAME, Layout, Network, Ports

PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> dict[str, Any]:
    """A kubeconfig with one client-certificate user."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "celery-harder",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [
            {
                "name": "celery-harder",
                "context": {"cluster": "celery-harder", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "celery-harder",
    }


def containerd_config(layout: Layout, cni_bin_dir: Path, runc: Path) -> str:
    """containerd 2.x configuration (version 3) for the CRI plugin, all paths our own."""
    return f"""version = 3
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"
# Nothing from /etc/containerd: this containerd is the node's alone.
imports = []
# NRI would listen on /var/run/nri; nothing here uses it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_state}/containerd.sock.ttrpc"

[plugins.'io.containerd.cri.v1.runtime']
  # runc cannot lower oom_score_adj here (root lacks CAP_SYS_RESOURCE on this VM):
  # without this every sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory instead of /var/run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni_bin_dir}"]
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  # No registry can be reached: every image is imported, none is ever pulled.
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

# Plugins that would otherwise make directories under /opt.
[plugins.'io.containerd.internal.v1.opt']
  path = "{layout.containerd_root}/opt"

[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = "{layout.containerd_root}/image-verifier"

[plugins.'io.containerd.grpc.v1.cri']
  [plugins.'io.containerd.grpc.v1.cri'.x509_key_pair_streaming]
    tls_cert_file = ""
    tls_key_file = ""
"""


def cni_conflist(layout: Layout, network: Network) -> dict[str, Any]:
    """A bridge of our own with hairpin on and no masquerade: pods never reach past the node."""
    return {
        "cniVersion": "1.0.0",
        "name": "celery-harder",
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam_dir),
                    "ranges": [[{"subnet": network.pod_subnet, "gateway": network.node_ip}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: Layout, network: Network, ports: Ports) -> dict[str, Any]:
    """KubeletConfiguration for one cgroup-v1 node on a VM that refuses oom_score_adj."""
    pki = layout.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.node_ip,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        # This machine has cgroup v1 only; 1.35 refuses it unless told otherwise.
        "failCgroupV1": False,
        "failSwapOn": False,
        # runc may not lower oom_score_adj here; 0 asks for nothing it cannot do.
        "oomScoreAdj": 0,
        "clusterDNS": [network.dns_service_ip],
        "clusterDomain": network.cluster_domain,
        # No host resolvers: pods resolve cluster names only.
        "resolvConf": str(layout.config / "resolv.conf"),
        "podLogsDir": str(layout.pod_logs),
        # There is no registry to pull an image back from: never collect images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A disk with little free space must not evict the node's pods mid-test.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(layout: Layout, network: Network, ports: Ports) -> dict[str, Any]:
    """KubeProxyConfiguration: nftables, leaving the conntrack sysctls alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(layout.config / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "bindAddress": network.node_ip,
        "clusterCIDR": network.pod_subnet,
        "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
        "nodePortAddresses": [f"{network.node_ip}/32"],
        # 0 leaves nf_conntrack_max as the host has it.
        "conntrack": {"maxPerCore": 0},
    }


def resolv_conf() -> str:
    """The host resolver configuration pods inherit: none, so no query leaves the node."""
    return "# no upstream resolvers: pods resolve cluster names only\n"
