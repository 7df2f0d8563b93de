"""Images for the node: no registry can be reached, so every image is imported into containerd."""

import csv
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from celery_harder_dev.cluster.layout import cache_root

# Written by scripts/build-cluster-images.sh: one row per image (name, archive, image id).
INDEX = "cluster-images/index.tsv"
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses
# Marks which build of an image containerd holds, so an unchanged image is not imported again.
ID_LABEL = "org.celery-harder.image-id"


@dataclass(frozen=True)
class Archive:
    """One image as an OCI archive on disk."""

    name: str
    path: Path
    image_id: str


def archives(index: Path | None = None) -> list[Archive]:
    """Every image the node needs, from the index the image script writes."""
    index = index or cache_root() / INDEX
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing: run scripts/build-cluster-images.sh")
    with index.open(newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t") if r and not r[0].startswith("#")]
    return [Archive(name, Path(path), image_id) for name, path, image_id, *_ in rows]


def _ctr(ctr: Path, socket: Path, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(ctr), "--address", str(socket), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def containerd_answers(ctr: Path, socket: Path) -> bool:
    """Whether containerd serves its API on `socket`."""
    return socket.exists() and bool(_ctr(ctr, socket, "version", timeout=10))


def imported_ids(ctr: Path, socket: Path) -> dict[str, str]:
    """Image name -> the build id label, for every image containerd holds."""
    held = {}
    for line in _ctr(ctr, socket, "images", "list").splitlines()[1:]:
        words = line.split()
        labels = (
            dict(pair.split("=", 1) for pair in words[-1].split(",") if "=" in pair)
            if words
            else {}
        )
        if words:
            held[words[0]] = labels.get(ID_LABEL, "")
    return held


def import_all(ctr: Path, socket: Path, log: Callable[[str], None]) -> None:
    """Import every image whose build containerd does not hold yet."""
    held = imported_ids(ctr, socket)
    for archive in archives():
        if held.get(archive.name) == archive.image_id:
            continue
        log(f"importing {archive.name}")
        _ctr(ctr, socket, "images", "import", str(archive.path))
        _ctr(ctr, socket, "images", "label", archive.name, f"{ID_LABEL}={archive.image_id}")
