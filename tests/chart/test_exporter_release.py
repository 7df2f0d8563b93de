"""The celery-exporter the tests run is the chart's: one version, the same flags.

The chart's exporter.image.tag is the one place the release is written;
scripts/lib/celery-exporter-version.sh reads it for the image build and for the PyPI
install the tests and `make dev PROMETHEUS=1` use (scripts/install-celery-exporter.sh).
"""

import re
import shutil
import subprocess
import time

import pytest
import yaml

from celery_harder_dev.exporter import chart_exporter_values, exporter_command, exporter_python

from .chartlib import CHART, REPO, pod_spec, render_sets

VERSION_SCRIPT = REPO / "scripts" / "lib" / "celery-exporter-version.sh"
BUILD_SCRIPT = REPO / "scripts" / "build-cluster-images.sh"
INSTALL_SCRIPT = REPO / "scripts" / "install-celery-exporter.sh"


def test_one_version_for_the_image_the_pypi_install_and_the_dev_helper() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["exporter"]
    tag = values["image"]["tag"]
    script = subprocess.run(
        ["bash", str(VERSION_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert script.returncode == 0, script.stderr
    assert script.stdout.strip() == tag
    assert chart_exporter_values() == {
        "tag": tag,
        "workerTimeout": str(values["workerTimeout"]),
        "purgeOfflineWorkerMetrics": str(values["purgeOfflineWorkerMetrics"]),
    }
    # The image build takes its version from the same script, and its pins exist for it.
    build = BUILD_SCRIPT.read_text()
    (line,) = re.findall(r"^EXPORTER_VERSION=.*$", build, re.M)
    assert "scripts/lib/celery-exporter-version.sh" in line, line
    assert (REPO / "scripts" / "lib" / f"celery-exporter-{tag}.constraints.txt").exists()
    assert f"prometheus-exporter-celery=={tag}" not in INSTALL_SCRIPT.read_text()  # read, not typed


def test_the_installed_exporter_is_that_release_and_installs_fast_when_cached() -> None:
    start = time.monotonic()
    run = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    python = exporter_python()
    assert run.stdout.strip() == f"CELERY_EXPORTER_PYTHON={python}"
    assert took < 5, f"a cached install took {took:.1f}s"
    tag = chart_exporter_values()["tag"]
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, src.cli; "
            "print(m.version('prometheus-exporter-celery'), m.version('prometheus-client'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    version, client = probe.stdout.split()
    assert version == tag
    assert tuple(int(p) for p in client.split(".")[:2]) < (0, 22)  # why it has a venv of its own


def flag_names(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def test_local_exporter_flags_mirror_the_chart_deployment() -> None:
    render = render_sets("helm4", ())
    (container,) = pod_spec(render.get("Deployment", "celery-harder-exporter"))["containers"]
    chart_flags = flag_names(container["args"])
    local = exporter_command("redis://127.0.0.1:1/0", 9808, ["celery"])
    assert local[1:3] == ["-c", 'from src.cli import cli; cli(auto_envvar_prefix="CE")']
    # Locally it listens on loopback only; every other flag is the chart's.
    assert [f for f in flag_names(local) if f != "--host"] == chart_flags
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert f"--worker-timeout={env['CE_WORKER_TIMEOUT']}" in local
    assert f"--purge-offline-worker-metrics={env['CE_PURGE_OFFLINE_WORKER_METRICS']}" in local
    assert f"--retry-interval={env['CE_RETRY_INTERVAL']}" in local


def test_the_install_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: run `bash scripts/install-test-deps.sh`", pytrace=False)
    for script in (INSTALL_SCRIPT, VERSION_SCRIPT):
        proc = subprocess.run(
            [shellcheck, "-x", str(script)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
