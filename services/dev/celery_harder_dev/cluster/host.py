"""What the node changes on the host, and how `down` puts each thing back.

Before the first `up` the host's state is recorded (sysctls, directories, firewall
tables); `down` removes only what was not there before and restores the sysctls.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from celery_harder_dev.cluster.layout import Network

# Sysctls that the node sets itself (forwarding, bridge netfilter) or that kubelet sets.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
)
# Host directories that kubelet, containerd or runc hard-code whatever their configuration.
HARD_CODED_DIRS = (
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/var/run/netns",
    "/run/netns",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
)
GUARD_TABLE = "celery_harder_guard"
# kube-proxy's nftables tables, one per family.
KUBE_PROXY_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"))
IPTABLES_TABLES = ("filter", "nat", "mangle")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class HostError(RuntimeError):
    """A host change failed; the message holds the command and its output."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a host command; its stdout, or HostError with stderr when it fails and `check`."""
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
    )
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    """A sysctl's value, or None where this kernel has no such key."""
    try:
        return sysctl_path(name).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    sysctl_path(name).write_text(value)


@dataclass
class HostRecord:
    """The host before the node touched it."""

    sysctls: dict[str, str] = field(default_factory=dict)
    existing_dirs: list[str] = field(default_factory=list)
    nft_tables: list[str] = field(default_factory=list)
    iptables_chains: list[str] = field(default_factory=list)

    @classmethod
    def capture(cls) -> "HostRecord":
        """Read the host as it is now."""
        sysctls = {name: v for name in SYSCTLS if (v := read_sysctl(name)) is not None}
        return cls(
            sysctls=sysctls,
            existing_dirs=[d for d in HARD_CODED_DIRS if os.path.lexists(d)],
            nft_tables=nft_tables(),
            iptables_chains=iptables_chains(),
        )

    @classmethod
    def load(cls, path: Path) -> "HostRecord | None":
        """The record of an earlier `up` that was never taken down, if there is one."""
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    @classmethod
    def load_or_capture(cls, path: Path) -> "HostRecord":
        """The record of an earlier `up` that was never taken down, else a new one, saved."""
        if (earlier := cls.load(path)) is not None:
            return earlier
        record = cls.capture()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(record), indent=2))
        return record


def nft_tables() -> list[str]:
    """`family name` of every nftables table, or [] without nft."""
    if not shutil.which("nft"):
        return []
    out = run(["nft", "list", "tables"], check=False)
    return [line.removeprefix("table ").strip() for line in out.splitlines() if line.strip()]


def iptables_chains() -> list[str]:
    """`table/chain` of every KUBE-* chain in iptables and ip6tables, or [] without them."""
    chains = []
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in IPTABLES_TABLES:
            out = run([tool, "-w", "-t", table, "-S"], check=False)
            for line in out.splitlines():
                parts = line.split()
                if parts[:1] == ["-N"] and parts[1].startswith("KUBE-"):
                    chains.append(f"{tool}/{table}/{parts[1]}")
    return chains


# ----------------------------------------------------------------- network


def guard_ruleset(network: Network) -> str:
    """An nftables table that drops anything forwarded between the pod bridge and elsewhere."""
    bridge = network.bridge
    return (
        f"table inet {GUARD_TABLE} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        f'    iifname "{bridge}" oifname != "{bridge}" counter drop\n'
        f'    iifname != "{bridge}" oifname "{bridge}" counter drop\n'
        "  }\n"
        "}\n"
    )


def network_up(network: Network) -> None:
    """The pod bridge with the node's address, unreachable routes, the guard, forwarding."""
    prefix = network.pod_subnet.split("/")[1]
    if not Path(f"/sys/class/net/{network.bridge}").exists():
        run(["ip", "link", "add", "name", network.bridge, "type", "bridge"])
    addresses = run(["ip", "-o", "-4", "addr", "show", "dev", network.bridge])
    if f" {network.node_ip}/{prefix} " not in addresses:
        run(["ip", "addr", "add", f"{network.node_ip}/{prefix}", "dev", network.bridge])
    run(["ip", "link", "set", network.bridge, "up"])
    # Beneath the bridge's own /24: a packet for an address no pod holds fails here
    # instead of following the default route off the machine.
    run(["ip", "route", "replace", "unreachable", network.pod_range])
    # Service addresses go onto the bridge, not `unreachable`: a host process's route
    # lookup happens before kube-proxy's DNAT, and `unreachable` would refuse every
    # ClusterIP from the host. kube-proxy drops what no Service holds ("Drop traffic
    # to unallocated ClusterIPs"), so nothing for this range leaves the machine either.
    run(["ip", "route", "replace", network.service_range, "dev", network.bridge,
         "src", network.node_ip])  # fmt: skip
    # add + delete first: one atomic transaction that replaces any earlier guard
    # (Debian's nft 1.0.6 has no `destroy`).
    replace = f"add table inet {GUARD_TABLE}\ndelete table inet {GUARD_TABLE}\n"
    run(["nft", "-f", "-"], stdin=replace + guard_ruleset(network))
    write_sysctl("net.ipv4.ip_forward", "1")
    # Service replies between pods on one bridge must pass conntrack to be un-NATed.
    write_sysctl("net.bridge.bridge-nf-call-iptables", "1")


def network_down(network: Network, record: HostRecord) -> None:
    """Remove the bridge, the routes, and the nftables tables the node made."""
    run(["ip", "route", "del", "unreachable", network.pod_range], check=False)
    if Path(f"/sys/class/net/{network.bridge}").exists():
        run(["ip", "link", "del", network.bridge])
    if shutil.which("nft"):
        present = set(nft_tables())
        for family, name in (("inet", GUARD_TABLE), *KUBE_PROXY_TABLES):
            table = f"{family} {name}"
            if table in present and table not in record.nft_tables:
                run(["nft", "delete", "table", family, name])
    _remove_iptables_chains(record)
    # kubelet's iptables calls (iptables-nft) create the base tables too; drop the
    # ones that were not there before and hold no rule now.
    for table in nft_tables():
        if table not in record.nft_tables and _nft_table_is_empty(table):
            run(["nft", "delete", "table", *table.split()])


def _nft_table_is_empty(table: str) -> bool:
    """Whether an nftables table holds no rule, set or map (only empty chains)."""
    listing = json.loads(run(["nft", "-j", "list", "table", *table.split()]))
    kinds = {next(iter(item)) for item in listing.get("nftables", [])}
    return not kinds & {"rule", "set", "map", "element"}


def _remove_iptables_chains(record: HostRecord) -> None:
    """Flush and delete the KUBE-* chains kubelet added, with the rules that jump to them."""
    added = [c for c in iptables_chains() if c not in record.iptables_chains]
    for entry in added:
        tool, table, chain = entry.split("/")
        rules = run([tool, "-w", "-t", table, "-S"], check=False).splitlines()
        for rule in rules:
            words = rule.split()
            if words[:1] == ["-A"] and words[1] != chain and chain in words[2:]:
                run([tool, "-w", "-t", table, "-D", *words[1:]], check=False)
        run([tool, "-w", "-t", table, "-F", chain], check=False)
    for entry in added:
        tool, table, chain = entry.split("/")
        run([tool, "-w", "-t", table, "-X", chain], check=False)


def restore_sysctls(record: HostRecord) -> None:
    """Put back every recorded sysctl that now differs."""
    for name, value in record.sysctls.items():
        if read_sysctl(name) != value:
            with contextlib.suppress(OSError):
                write_sysctl(name, value)


def remove_created_dirs(record: HostRecord) -> list[str]:
    """Remove the hard-coded host directories that did not exist before; returns them."""
    removed = []
    for path in HARD_CODED_DIRS:
        if path not in record.existing_dirs and os.path.lexists(path):
            unmount_under(Path(path))
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# ------------------------------------------------------- mounts and cgroups


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_under(root: Path) -> None:
    """Unmount everything below `root` (lazily where a mount is busy)."""
    for _ in range(3):
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            plain = subprocess.run(["umount", point], capture_output=True, check=False)
            if plain.returncode != 0:
                run(["umount", "-l", point], check=False)
    left = mounts_under(root)
    if left:
        raise HostError(f"still mounted under {root}: {left}")


def pod_cgroups() -> list[Path]:
    """kubelet's `kubepods` cgroup trees, one per cgroup-v1 controller."""
    return sorted(CGROUP_ROOT.glob("*/kubepods"))


def kill_pod_processes() -> int:
    """SIGKILL every process left in a pod cgroup; returns how many were signalled."""
    pids: set[int] = set()
    for tree in pod_cgroups():
        for procs in tree.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_cgroups(trees: Iterable[Path]) -> None:
    """rmdir cgroup trees bottom-up (cgroupfs refuses to remove non-empty groups)."""
    for tree in trees:
        directories = sorted(
            (p for p in tree.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for directory in [*directories, tree]:
            with contextlib.suppress(OSError):
                directory.rmdir()


def processes_matching(*needles: str) -> list[int]:
    """Pids whose command line holds every needle (e.g. shims of our containerd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv]
        if all(any(needle in w for w in words) for needle in needles):
            found.append(int(entry.name))
    return found


def require_root() -> None:
    """The node changes the host's network and mounts: it needs root."""
    if os.geteuid() != 0:
        raise HostError("the local node needs root (bridges, mounts, nftables, cgroups)")
