"""The node's build outputs, read from the cache (nothing is built here).

* the build scripts pass shellcheck;
* every binary of scripts/build-control-plane.sh and scripts/build-node.sh runs
  and reports the version it was built at;
* every OCI archive that scripts/build-cluster-images.sh lists in index.tsv is
  complete (every blob present with its digest and size), names the image in
  index.json, holds the image whose ID the index records, and has the
  entrypoint, user and files the cluster relies on.

A missing output fails with the command that makes it; nothing is skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from celery_harder_dev.cluster.addons import manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = os.environ.get("K8S_VERSION", "v1.35.4")
SCRIPTS = (
    "scripts/build-control-plane.sh",
    "scripts/build-node.sh",
    "scripts/build-cluster-images.sh",
)


def cache_root() -> Path:
    return Path(os.environ.get("CELERY_HARDER_CACHE", Path.home() / ".cache" / "celery-harder"))


def need_file(path: Path, script: str) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `bash {script}` from {REPO_ROOT}", pytrace=False)
    return path


def run(args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


# ------------------------------------------------------------------ shellcheck


@pytest.mark.parametrize(
    "script",
    [
        *SCRIPTS,
        "scripts/run-tests.sh",
        *sorted(
            str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "scripts" / "lib").glob("*.sh")
        ),
    ],
)
def test_shellcheck(script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: run `bash scripts/install-test-deps.sh`", pytrace=False)
    proc = subprocess.run(
        [shellcheck, "-x", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ binaries


@dataclass(frozen=True)
class Binary:
    """A built program, the command that prints its version, and what it must print."""

    relpath: str  # under the cache root
    script: str
    args: tuple[str, ...]
    expect: str
    env: dict[str, str] = field(default_factory=dict)


CP = f"control-plane/{K8S_VERSION}"
N = "node"
CONTROL = "scripts/build-control-plane.sh"
NODE = "scripts/build-node.sh"
BINARIES = [
    *(
        Binary(f"{CP}/{b}", CONTROL, ("--version",), f"Kubernetes {K8S_VERSION}")
        for b in (
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kube-proxy",
        )
    ),
    Binary(
        f"{N}/containerd/v2.4.2/containerd",
        NODE,
        ("--version",),
        "containerd github.com/containerd/containerd/v2 v2.4.2",
    ),
    Binary(
        f"{N}/containerd/v2.4.2/ctr",
        NODE,
        ("--version",),
        "ctr github.com/containerd/containerd/v2 v2.4.2",
    ),
    Binary(f"{N}/containerd/v2.4.2/containerd-shim-runc-v2", NODE, ("-v",), "Version:  v2.4.2"),
    *(
        Binary(f"{N}/cni-plugins/v1.10.0/{p}", NODE, (), f"CNI {p} plugin v1.10.0")
        for p in ("bridge", "host-local", "loopback", "portmap")
    ),
    Binary(f"{N}/coredns/v1.15.0/coredns", NODE, ("-version",), "CoreDNS-1.15.0"),
    Binary(f"{N}/crictl/v1.37.0/crictl", NODE, ("--version",), "crictl version v1.37.0"),
    Binary(
        f"{N}/local-path-provisioner/v0.0.30/local-path-provisioner",
        NODE,
        ("--version",),
        "local-path-provisioner version v0.0.30",
    ),
    Binary(f"{N}/pause/{K8S_VERSION}/pause", NODE, ("-v",), f"pause.c v3.10.1-{K8S_VERSION}"),
]


@pytest.mark.parametrize("binary", BINARIES, ids=lambda b: b.relpath)
def test_binary_reports_its_version(binary: Binary) -> None:
    path = need_file(cache_root() / binary.relpath, binary.script)
    assert binary.expect in run([str(path), *binary.args], binary.env)


def test_etcd_reports_the_version_recorded_beside_it() -> None:
    versions = need_file(cache_root() / CP / "VERSIONS", CONTROL).read_text()
    recorded = dict(line.split("=", 1) for line in versions.split())
    out = run([str(need_file(cache_root() / CP / "etcd", CONTROL)), "--version"])
    if recorded["etcd"] != "apt":
        assert f"etcd Version: {recorded['etcd'].removeprefix('v')}" in out


def test_runc_is_installed() -> None:
    runc = shutil.which("runc") or "/usr/sbin/runc"
    if not Path(runc).is_file():
        pytest.fail(f"runc is missing: run `bash {NODE} runc`", pytrace=False)
    assert "runc version 1." in run([runc, "--version"])


def corefile_directives(corefile: str) -> set[str]:
    """The directives of a Corefile's server blocks: the first word of each line one level in."""
    directives, depth = set(), 0
    for line in corefile.splitlines():
        words = line.split("#", 1)[0].split()
        if words and depth == 1 and words[0] != "}":
            directives.add(words[0])
        depth += line.count("{") - line.count("}")
    return directives


def test_corefile_directives_reads_the_server_blocks_only() -> None:
    corefile = "a:53 b:53 {\n  errors\n  health {\n    lameduck 2s\n  }\n  cache 30 # c\n}\n"
    assert corefile_directives(corefile) == {"errors", "health", "cache"}


def test_coredns_has_every_plugin_the_node_corefile_uses() -> None:
    # scripts/build-node.sh builds CoreDNS with a chosen set of plugins (prepare_coredns)
    rendered = manifest(
        "coredns.yaml", image="coredns", cluster_domain="cluster.local", dns_service_ip="10.0.0.10"
    )
    (config_map,) = (d for d in yaml.safe_load_all(rendered) if d["kind"] == "ConfigMap")
    used = corefile_directives(config_map["data"]["Corefile"])
    assert {"kubernetes", "health", "ready"} <= used
    path = need_file(cache_root() / N / "coredns" / "v1.15.0" / "coredns", NODE)
    assert used <= set(run([str(path), "-plugins"]).split())


def keda_kept_triggers() -> set[str]:
    """The trigger types prepare_keda in scripts/build-node.sh keeps in the node's KEDA."""
    script = (REPO_ROOT / NODE).read_text()
    body = script[script.index("prepare_keda() {") :]
    (kept,) = re.findall(r'local keep="([^"]+)"', body[: body.index("\n}\n")])
    return set(kept.split("|"))


def test_keda_keeps_every_trigger_type_the_chart_renders() -> None:
    # scripts/build-node.sh builds KEDA with a chosen set of scalers (prepare_keda)
    template = REPO_ROOT / "charts" / "celery-harder" / "templates" / "keda" / "scaledobject.yaml"
    used = set(re.findall(r"^\s*- type: (\S+)$", template.read_text(), re.MULTILINE))
    assert used == {"redis"}
    assert used <= keda_kept_triggers()


@pytest.mark.parametrize("relpath", [f"{N}/keda/v2.21.0/keda", f"{N}/keda/v2.21.0/keda-adapter"])
def test_keda_links_the_redis_scaler_and_not_the_pruned_ones(relpath: str) -> None:
    modules = run([go_binary(), "version", "-m", str(need_file(cache_root() / relpath, NODE))])
    assert "\tgithub.com/redis/go-redis/v9\t" in modules
    # the Elasticsearch scalers' client, the largest of the pruned dependencies
    assert "github.com/elastic/go-elasticsearch" not in modules


def go_binary() -> str:
    go = os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).is_file():
        pytest.fail("no Go toolchain (set GO=...) to read build info", pytrace=False)
    return go


@pytest.mark.parametrize(
    ("relpath", "help_text", "build_info", "linked"),
    [
        # KEDA's programs have no version flag: the version is linked in (-X) and
        # printed at start-up once connected to a cluster. Built inside the module
        # (its replace lines apply), so the build info names the package, not a
        # module version, and -trimpath keeps -ldflags out of it: the linked string
        # itself is looked for in the binary.
        pytest.param(
            f"{N}/keda/v2.21.0/keda",
            "--leader-elect",
            "path\tgithub.com/kedacore/keda/v2/cmd/operator",
            b"2.21.0",
            id="keda",
        ),
        pytest.param(
            f"{N}/keda/v2.21.0/keda-adapter",
            "--secure-port",
            "path\tgithub.com/kedacore/keda/v2/cmd/adapter",
            b"2.21.0",
            id="keda-adapter",
        ),
        # kube-network-policies has no version at all: the build info names the module version
        pytest.param(
            f"{N}/kube-network-policies/v0.8.0/netpol",
            "-nfqueue-id",
            "mod\tsigs.k8s.io/kube-network-policies\tv0.8.0",
            None,
            id="netpol",
        ),
    ],
)
def test_binary_without_a_version_flag(
    relpath: str, help_text: str, build_info: str, linked: bytes | None
) -> None:
    path = need_file(cache_root() / relpath, NODE)
    proc = subprocess.run(
        [str(path), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    # the Go flag package exits 0 on --help, spf13/pflag with 0 or 2 depending on the program
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    assert help_text in proc.stdout + proc.stderr
    assert build_info in run([go_binary(), "version", "-m", str(path)])
    if linked is not None:
        assert linked in path.read_bytes()


# ------------------------------------------------------------------ archives

IMAGES = "scripts/build-cluster-images.sh"


@dataclass(frozen=True)
class Expected:
    """What an image's config and files must say."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""
    files: dict[str, int | None] = field(default_factory=dict)  # path -> uid (None: any)


EXPECTED: dict[str, Expected] = {
    "registry.k8s.io/pause:3.10.2": Expected(["/pause"], None, "65535:65535", {"pause": 0}),
    "registry.k8s.io/coredns/coredns:v1.15.0": Expected(
        ["/coredns"], None, "65532:65532", {"coredns": 0, "etc/passwd": 0}
    ),
    "ghcr.io/kedacore/keda:2.21.0": Expected(
        ["/keda", "--zap-log-level=info", "--zap-encoder=console"], None, "65532:65532", {"keda": 0}
    ),
    "ghcr.io/kedacore/keda-metrics-apiserver:2.21.0": Expected(
        ["/keda-adapter", "--secure-port=6443", "--zap-log-level=info", "--zap-encoder=console"],
        None,
        "65532:65532",
        {"keda-adapter": 0},
    ),
    "docker.io/rancher/local-path-provisioner:v0.0.30": Expected(
        None, ["local-path-provisioner"], "", {"usr/bin/local-path-provisioner": 0}
    ),
    "docker.io/library/busybox:latest": Expected(
        None, ["sh"], "", {"bin/busybox": 0, "bin/sh": 0, "bin/mkdir": 0, "bin/rm": 0}
    ),
    "registry.k8s.io/networking/kube-network-policies:v0.8.0": Expected(
        None, ["/bin/netpol"], "", {"bin/netpol": 0}
    ),
    "docker.io/library/redis:7.0.15": Expected(
        None,
        ["redis-server"],
        "",
        # bookworm has merged /usr: /bin is a link to usr/bin
        {
            "usr/bin/redis-server": 0,
            "usr/bin/redis-cli": 0,
            "usr/bin/sh": None,
            "usr/bin/grep": None,
            "data": 999,
        },
    ),
    "docker.io/danihodovic/celery-exporter:0.11.2": Expected(
        ["python", "/app/cli.py"], None, "1000:1000", {"app/cli.py": 0, "app/.venv/bin/python": 0}
    ),
    "docker.io/celery-harder/api:dev": Expected(),
    "docker.io/celery-harder/worker:dev": Expected(),
    "docker.io/celery-harder/operator:dev": Expected(),
}


@dataclass(frozen=True)
class Row:
    name: str
    archive: Path
    image_id: str


def index_rows() -> dict[str, Row]:
    index = need_file(cache_root() / "cluster-images" / "index.tsv", IMAGES)
    with index.open(newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t") if r]
    return {r[0]: Row(r[0], Path(r[1]), r[2]) for r in rows}


def test_index_lists_every_image() -> None:
    missing = sorted(set(EXPECTED) - set(index_rows()))
    assert not missing, f"not in index.tsv (run `bash {IMAGES}`): {missing}"


class OciArchive:
    """An OCI image layout in a tar file; blobs are read by digest."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path)  # noqa: SIM115 - closed by the test's fixture
        self.members = {m.name.removeprefix("./"): m for m in self.tar.getmembers()}

    def read(self, name: str) -> bytes:
        member = self.members.get(name)
        assert member is not None, f"{name} is not in the archive"
        handle = self.tar.extractfile(member)
        assert handle is not None
        return handle.read()

    def blob_path(self, digest: str) -> str:
        algo, _, hexdigest = digest.partition(":")
        return f"blobs/{algo}/{hexdigest}"

    def check_blob(self, descriptor: dict[str, Any]) -> None:
        """The blob is present, of the descriptor's size and digest (read in chunks)."""
        name = self.blob_path(descriptor["digest"])
        member = self.members.get(name)
        assert member is not None, f"blob {descriptor['digest']} is missing"
        assert member.size == descriptor["size"], f"{name}: size {member.size}"
        handle = self.tar.extractfile(member)
        assert handle is not None
        sha = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
        assert f"sha256:{sha.hexdigest()}" == descriptor["digest"], f"{name}: wrong digest"

    def json_blob(self, descriptor: dict[str, Any]) -> dict[str, Any]:
        self.check_blob(descriptor)
        data: dict[str, Any] = json.loads(self.read(self.blob_path(descriptor["digest"])))
        return data

    def layer_members(self, descriptor: dict[str, Any]) -> Iterator[tarfile.TarInfo]:
        raw = self.tar.extractfile(self.members[self.blob_path(descriptor["digest"])])
        assert raw is not None
        gzipped = descriptor["mediaType"].endswith("gzip")
        with tarfile.open(fileobj=raw, mode="r|gz" if gzipped else "r|") as layer:
            yield from layer

    def close(self) -> None:
        self.tar.close()


@pytest.fixture(params=sorted(EXPECTED), ids=str)
def image(request: pytest.FixtureRequest) -> Iterator[tuple[Row, OciArchive]]:
    rows = index_rows()
    name: str = request.param
    if name not in rows:
        pytest.fail(f"{name} is not in index.tsv: run `bash {IMAGES}`", pytrace=False)
    row = rows[name]
    need_file(row.archive, IMAGES)
    archive = OciArchive(row.archive)
    try:
        yield row, archive
    finally:
        archive.close()


def test_archive_is_the_indexed_image(image: tuple[Row, OciArchive]) -> None:
    row, archive = image
    assert json.loads(archive.read("oci-layout"))["imageLayoutVersion"] == "1.0.0"
    index = json.loads(archive.read("index.json"))
    refs = [
        m.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for m in index["manifests"]
    ]
    assert refs == [row.name], f"index.json names {refs}"
    manifest = archive.json_blob(index["manifests"][0])
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    # buildah's image ID is the digest of the image config
    assert manifest["config"]["digest"] == f"sha256:{row.image_id}"
    config = archive.json_blob(manifest["config"])
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert manifest["layers"], "no layers"
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"])
    for layer in manifest["layers"]:
        archive.check_blob(layer)

    expected = EXPECTED[row.name]
    if expected.entrypoint is not None or expected.cmd is not None:
        cfg = config.get("config", {})
        assert cfg.get("Entrypoint") == expected.entrypoint
        assert cfg.get("Cmd") == expected.cmd
        assert cfg.get("User", "") == expected.user
    if expected.files:
        found: dict[str, tarfile.TarInfo] = {}
        for layer in manifest["layers"]:  # later layers win
            for member in archive.layer_members(layer):
                found[member.name.removeprefix("./").rstrip("/")] = member
        for path, uid in expected.files.items():
            assert path in found, f"{path} is not in {row.name}"
            if uid is not None:
                assert found[path].uid == uid, f"{path} is owned by {found[path].uid}"
        if row.name.startswith("registry.k8s.io/coredns/"):
            # cap_net_bind_service, so that the non-root user can bind port 53
            xattrs = found["coredns"].pax_headers
            assert "SCHILY.xattr.security.capability" in xattrs, xattrs
