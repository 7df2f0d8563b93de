"""Bring the single local node up and down: the order, the waits, the cleanup."""

import contextlib
import json
import os
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from celery_harder_dev.cluster import addons, components, configs, host, images, pki, processes
from celery_harder_dev.cluster.binaries import Binaries
from celery_harder_dev.cluster.kubectl import Kubectl
from celery_harder_dev.cluster.layout import NODE_NAME, Layout, Network, Ports

# Start order; `down` stops them in reverse.
DAEMONS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
)


# Client certificates with a kubeconfig each: kubeconfig name -> (certificate stem, user).
CLIENTS = {
    "admin": ("admin", "admin"),
    "controller-manager": ("controller-manager-client", "system:kube-controller-manager"),
    "scheduler": ("scheduler-client", "system:kube-scheduler"),
    "kubelet": ("kubelet-client", f"system:node:{NODE_NAME}"),
    "kube-proxy": ("kube-proxy-client", "system:kube-proxy"),
}
ORGANIZATIONS = {"admin": "system:masters", f"system:node:{NODE_NAME}": "system:nodes"}


class ClusterError(RuntimeError):
    """The node failed to come up; the message says which part and shows its log."""


def log(message: str) -> None:
    """Progress on stderr, so stdout keeps only what scripts read."""
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time one step of `up` or `down` and report it."""
    started = time.monotonic()
    yield
    timings[name] = round(time.monotonic() - started, 1)
    log(f"{name}: {timings[name]} s")


def wait_for(check: Callable[[], bool], timeout: float, what: str, *, log_path: str = "") -> None:
    """Poll `check` until true or raise ClusterError naming `what` (and its log's tail)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure of a probe means "not yet"
            last = repr(exc)
        if time.monotonic() > deadline:
            tail = f"\nlast lines of {log_path}:\n{processes.tail(log_path)}" if log_path else ""
            raise ClusterError(f"{what} not ready after {timeout:.0f} s ({last}){tail}")
        time.sleep(0.2)


@dataclass
class LocalCluster:
    """The one node on this machine, described by its layout, network and ports."""

    layout: Layout = field(default_factory=Layout.default)
    network: Network = field(default_factory=Network)
    ports: Ports = field(default_factory=Ports)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://{self.network.node_ip}:{self.ports.apiserver}"

    def kubectl(self, binaries: Binaries | None = None) -> Kubectl:
        """kubectl as the cluster's admin."""
        kubectl = binaries.kubectl if binaries else Binaries.locate().kubectl
        return Kubectl(kubectl, self.layout.kubeconfig)

    # ----------------------------------------------------------- status

    def daemons(self) -> dict[str, processes.Daemon | None]:
        return {name: processes.recorded(self.layout.pids, name) for name in DAEMONS}

    def running(self) -> bool:
        """Whether every daemon of a previous `up` runs and the API server answers."""
        recorded = self.daemons().values()
        if not all(d is not None and d.alive() for d in recorded):
            return False
        return self._apiserver_ready()

    def host_before(self) -> host.HostRecord:
        """The host as the first `up` found it: an interrupted node's record, else the host now."""
        # An interrupted run leaves its changes behind; its record, not the host, is the origin.
        return host.HostRecord.load(self.layout.host_record) or host.HostRecord.capture()

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        context.load_cert_chain(
            str(self.layout.pki / "admin.crt"), str(self.layout.pki / "admin.key")
        )
        return context

    def _get(self, path: str) -> bytes:
        url = f"{self.server}{path}"
        with urllib.request.urlopen(url, timeout=5, context=self._ssl_context()) as response:
            body: bytes = response.read()
            return body

    def _apiserver_ready(self) -> bool:
        try:
            return self._get("/readyz") == b"ok"
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    # --------------------------------------------------------------- up

    def up(self) -> Path:
        """Start the node (or find it running) and return the admin kubeconfig's path."""
        host.require_root()
        if self.running():
            log(f"already running; KUBECONFIG={self.layout.kubeconfig}")
            return self.layout.kubeconfig
        if self.layout.state.exists():
            log("found the remains of an earlier node: taking them down first")
            self.down()
        started = time.monotonic()
        with step("locate or build binaries", self.timings):
            binaries = Binaries.locate()
        record = host.HostRecord.load_or_capture(self.layout.host_record)
        try:
            self._start(binaries)
        except BaseException:
            log(f"start failed; logs stay in {self.layout.logs}. Taking the node down.")
            with contextlib.suppress(Exception):
                self.down(record=record)
            raise
        self.timings["up"] = round(time.monotonic() - started, 1)
        log(f"node up in {self.timings['up']} s; KUBECONFIG={self.layout.kubeconfig}")
        return self.layout.kubeconfig

    def _start(self, binaries: Binaries) -> None:
        layout, network, ports = self.layout, self.network, self.ports
        with step("certificates and configuration", self.timings):
            self._write_files(binaries)
        with step("network", self.timings):
            host.network_up(network)
        start = self._spawn
        with step("etcd", self.timings):
            etcd = start(components.etcd(layout, ports, binaries))
            wait_for(
                lambda: _http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"),
                60,
                "etcd",
                log_path=etcd.log,
            )
        with step("kube-apiserver", self.timings):
            apiserver = start(components.apiserver(layout, network, ports, binaries))
            wait_for(self._apiserver_ready, 120, "kube-apiserver", log_path=apiserver.log)
        with step("controller-manager, scheduler, containerd", self.timings):
            start(components.controller_manager(layout, network, ports, binaries))
            start(components.scheduler(layout, ports, binaries))
            containerd = start(components.containerd(layout, binaries))
            wait_for(
                lambda: images.containerd_answers(binaries.ctr, layout.containerd_socket),
                60,
                "containerd",
                log_path=containerd.log,
            )
        with step("import images", self.timings):
            images.import_all(binaries.ctr, layout.containerd_socket, log)
        kubectl = Kubectl(binaries.kubectl, layout.kubeconfig)
        with step("kubelet: node Ready", self.timings):
            kubelet = start(components.kubelet(layout, network, binaries))
            wait_for(lambda: _node_ready(kubectl), 120, "node Ready", log_path=kubelet.log)
        with step("kube-proxy", self.timings):
            proxy = start(components.kube_proxy(layout, binaries))
            wait_for(
                lambda: _http_ok(f"http://127.0.0.1:{ports.proxy_healthz}/healthz"),
                60,
                "kube-proxy",
                log_path=proxy.log,
            )
        with step("default service account", self.timings):
            # Pods are refused until the controller-manager made the `default` account.
            wait_for(
                lambda: kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
                60,
                "the default ServiceAccount",
            )
        with step("add-ons", self.timings):
            addons.install_all(kubectl, layout, network, log)

    def _spawn(self, component: components.Component) -> processes.Daemon:
        return processes.spawn(component, self.layout.pids, self.layout.logs)

    def _write_files(self, binaries: Binaries) -> None:
        """Fresh certificates, kubeconfigs and configuration files under state/."""
        layout, network = self.layout, self.network
        shutil.rmtree(layout.logs, ignore_errors=True)
        for directory in (layout.state, layout.pki, layout.config, layout.logs, layout.volumes):
            directory.mkdir(parents=True, exist_ok=True)
        write_pki(layout, network)
        ca = layout.pki / "ca.crt"
        for name, (stem, user) in CLIENTS.items():
            cert, key = layout.pki / f"{stem}.crt", layout.pki / f"{stem}.key"
            document = configs.kubeconfig(self.server, ca, cert, key, user)
            target = layout.kubeconfig if name == "admin" else layout.config / f"{name}.kubeconfig"
            target.write_text(json.dumps(document, indent=2))
            target.chmod(0o600)
        files = {
            "containerd.toml": configs.containerd_config(
                layout, binaries.cni_bin_dir, binaries.runc
            ),
            "kubelet.yaml": yaml.safe_dump(configs.kubelet_config(layout, network, self.ports)),
            "kube-proxy.yaml": yaml.safe_dump(
                configs.kube_proxy_config(layout, network, self.ports)
            ),
            "resolv.conf": configs.resolv_conf(),
        }
        for name, text in files.items():
            (layout.config / name).write_text(text)
        layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (layout.cni_conf_dir / "10-celery-harder.conflist").write_text(
            json.dumps(configs.cni_conflist(layout, network), indent=2)
        )

    # ------------------------------------------------------------- down

    def down(self, record: host.HostRecord | None = None) -> None:
        """Stop every process `up` started and undo every change it made to the host."""
        host.require_root()
        started = time.monotonic()
        record = record or host.HostRecord.load_or_capture(self.layout.host_record)
        daemons = self.daemons()
        with step("stop kube-proxy and kubelet", self.timings):
            for name in ("kube-proxy", "kubelet"):
                if (daemon := daemons[name]) is not None:
                    processes.stop(daemon)
        with step("remove pod sandboxes", self.timings):
            self._remove_pods(daemons["containerd"])
        with step("stop containerd and the control plane", self.timings):
            for name in ("containerd", "kube-scheduler", "kube-controller-manager"):
                if (daemon := daemons[name]) is not None:
                    processes.stop(daemon)
            for pid in host.processes_matching(
                "containerd-shim", str(self.layout.containerd_socket)
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            host.kill_pod_processes()
            for name in ("kube-apiserver", "etcd"):
                if (daemon := daemons[name]) is not None:
                    processes.stop(daemon)
        with step("unmount, cgroups, network, sysctls", self.timings):
            host.unmount_under(self.layout.root)
            host.remove_cgroups(host.pod_cgroups())
            host.network_down(self.network, record)
            host.restore_sysctls(record)
            removed = host.remove_created_dirs(record)
            if removed:
                log(f"removed host directories the node created: {', '.join(removed)}")
            shutil.rmtree(self.layout.state, ignore_errors=True)
        self.layout.host_record.unlink(missing_ok=True)
        self.timings["down"] = round(time.monotonic() - started, 1)
        log(f"node down in {self.timings['down']} s")

    def _remove_pods(self, containerd: processes.Daemon | None) -> None:
        """Stop and remove every pod sandbox through CRI, which also releases its network."""
        if containerd is None or not containerd.alive():
            return
        try:
            crictl = Binaries.locate().crictl
        except RuntimeError as exc:
            log(f"crictl unavailable ({exc}); pods are killed through their cgroups instead")
            return
        endpoint = f"unix://{self.layout.containerd_socket}"
        out = host.run(
            [str(crictl), "--runtime-endpoint", endpoint, "--timeout", "60s", "rmp", "-a", "-f"],
            check=False,
        )
        log(out.strip() or "no pod sandboxes")


def write_pki(layout: Layout, network: Network) -> None:
    """The CA, every component's certificate, the front-proxy CA and the SA key pair."""
    directory = layout.pki
    ca = pki.CertificateAuthority.create("celery-harder-node-ca")
    ca.write(directory, "ca")
    ca.issue(
        directory,
        "apiserver",
        "kube-apiserver",
        usages=(pki.SERVER,),
        dns_names=pki.apiserver_dns_names(network.cluster_domain),
        ip_addresses=("127.0.0.1", network.node_ip, network.kubernetes_service_ip),
    )
    ca.issue(
        directory,
        "kubelet",
        NODE_NAME,
        usages=(pki.SERVER,),
        dns_names=(NODE_NAME,),
        ip_addresses=(network.node_ip,),
    )
    for stem, user in CLIENTS.values():
        ca.issue(directory, stem, user, organization=ORGANIZATIONS.get(user))
    # The API server calls kubelets (logs, exec, port-forward) as a cluster admin.
    ca.issue(
        directory,
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        organization="system:masters",
    )
    front_proxy = pki.CertificateAuthority.create("celery-harder-front-proxy-ca")
    front_proxy.write(directory, "front-proxy-ca")
    front_proxy.issue(directory, "front-proxy-client", "front-proxy-client")
    pki.write_service_account_keys(directory)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _node_ready(kubectl: Kubectl) -> bool:
    node = kubectl.json("get", "node", NODE_NAME)
    conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
    return conditions.get("Ready") == "True"
