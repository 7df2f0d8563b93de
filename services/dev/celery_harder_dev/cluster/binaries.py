"""The node's programs, located by the repo's build scripts (which build what is missing)."""

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The scripts that build or install each program and print `NAME=path` lines.
SCRIPTS = (
    "scripts/install-k8s-tools.sh",
    "scripts/build-control-plane.sh",
    "scripts/build-node.sh",
)


class MissingBinaryError(RuntimeError):
    """A program could not be built or found; the message names the script."""


def repo_root() -> Path:
    """The checkout this package is installed from (editable), or `CELERY_HARDER_REPO`."""
    configured = os.environ.get("CELERY_HARDER_REPO")
    root = Path(configured) if configured else Path(__file__).resolve().parents[4]
    if not (root / "scripts" / "build-node.sh").is_file():
        raise MissingBinaryError(
            f"no celery-harder checkout at {root}: install this package editable "
            "(make venv) or set CELERY_HARDER_REPO"
        )
    return root


def run_script(script: str) -> dict[str, str]:
    """Run one build script (a cache check when warm) and parse its `NAME=path` lines."""
    root = repo_root()
    proc = subprocess.run(
        ["bash", str(root / script)], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise MissingBinaryError(
            f"{script} failed (exit {proc.returncode}):\n{proc.stderr.strip()[-3000:]}"
        )
    found = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.isupper():
            found[name] = value.split()[0] if value else value
    return found


@dataclass(frozen=True)
class Binaries:
    """Paths of every program the node runs or calls."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubelet: Path
    kube_proxy: Path
    containerd: Path
    ctr: Path
    crictl: Path
    runc: Path
    cni_bin_dir: Path
    kubectl: Path
    helm: Path

    @classmethod
    def locate(cls) -> "Binaries":
        """The programs' paths, from the build scripts' first run in this process."""
        return _located()

    @classmethod
    def _from_scripts(cls) -> "Binaries":
        """Run the build scripts and collect their paths; each must exist and be executable."""
        found: dict[str, str] = {}
        for script in SCRIPTS:
            found.update(run_script(script))
        names = {
            "etcd": "ETCD",
            "kube_apiserver": "KUBE_APISERVER",
            "kube_controller_manager": "KUBE_CONTROLLER_MANAGER",
            "kube_scheduler": "KUBE_SCHEDULER",
            "kubelet": "KUBELET",
            "kube_proxy": "KUBE_PROXY",
            "containerd": "CONTAINERD",
            "ctr": "CTR",
            "crictl": "CRICTL",
            "runc": "RUNC",
            "cni_bin_dir": "CNI_BIN_DIR",
            "kubectl": "KUBECTL",
            "helm": "HELM",
        }
        paths = {}
        for field, variable in names.items():
            if variable not in found:
                raise MissingBinaryError(f"none of {SCRIPTS} printed {variable}=<path>")
            path = Path(found[variable])
            if not path.exists():
                raise MissingBinaryError(f"{variable}={path} does not exist")
            paths[field] = path
        return cls(**paths)


@functools.cache
def _located() -> Binaries:
    # up, down, the kubectl helper and the test fixtures all ask; the scripts, even
    # warm, run three bash programs, so they run once (a failure is not cached).
    return Binaries._from_scripts()
