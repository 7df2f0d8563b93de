"""kind-config.yaml, skaffold.yaml and scripts/kind-up.sh agree with the chart.

No container runtime or cluster runs here (T4 is a user's machine), so:
- kind-config.yaml's port mappings are checked against the NodePorts the kind values set;
- skaffold.yaml is checked structurally, its profile patches are applied, and the
  chart is rendered the way Skaffold's helm deployer would call it (the
  setValueTemplates filled in) and validated;
- kind-up.sh is syntax-checked (and shellchecked when shellcheck is installed),
  and run end to end against stub kind/kubectl/helm/skaffold/docker binaries
  that record their arguments, to show the order of the steps and the flags.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.chartlib import CHART, HELMS, REPO, run_helm
from tests.chart.chartlib import helm_binary as chartlib_helm

KIND_CONFIG = REPO / "kind-config.yaml"
SKAFFOLD = REPO / "skaffold.yaml"
KIND_UP = REPO / "scripts" / "kind-up.sh"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"


def _load(path):
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- kind-config


def test_kind_config_maps_api_flower_and_grafana_nodeports():
    cfg = _load(KIND_CONFIG)
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert cfg["name"] == "celery-harder"
    (node,) = [n for n in cfg["nodes"] if n["role"] == "control-plane"]
    mappings = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    values = _load(KIND_VALUES)
    assert mappings[values["api"]["service"]["nodePort"]] == 8000
    assert mappings[values["flower"]["service"]["nodePort"]] == 5555
    grafana = re.search(r"grafana\.service\.nodePort=(\d+)", KIND_UP.read_text()).group(1)
    assert mappings[int(grafana)] == 3000
    for m in node["extraPortMappings"]:
        assert 30000 <= m["containerPort"] <= 32767
        assert m.get("listenAddress") == "127.0.0.1"


# ---------------------------------------------------------------- skaffold


def _sanitize(image):
    return re.sub(r"[/.:-]", "_", image)


def _drop_empty(node):
    """Skaffold drops empty fields (omitempty) before it applies profile patches."""
    if isinstance(node, dict):
        return {k: _drop_empty(v) for k, v in node.items() if v not in ({}, [], "", None)}
    if isinstance(node, list):
        return [_drop_empty(v) for v in node]
    return node


def _json_patch(doc, patches):
    doc = _drop_empty(copy.deepcopy(doc))
    for p in patches:
        parts = [x.replace("~1", "/").replace("~0", "~") for x in p["path"].lstrip("/").split("/")]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        key = int(last) if isinstance(parent, list) else last
        if p["op"] == "replace":
            assert key in parent if isinstance(parent, dict) else key < len(parent), p
            parent[key] = p["value"]
        elif p["op"] == "remove":
            assert key in parent if isinstance(parent, dict) else key < len(parent), p
            del parent[key]
        elif p["op"] == "add":
            parent[key] = p["value"]
        else:
            raise AssertionError(f"unsupported op {p['op']}")
    return doc


def _skaffold_schema(api_version):
    """The JSON schema skaffold publishes for `api_version`, from its Go module in a module cache."""  # noqa: E501
    name = api_version.split("/")[1] + ".json"
    caches = [
        os.environ.get("GOMODCACHE"),
        Path.home() / ".cache" / "celery-harder" / "go" / "mod",
        Path.home() / "go" / "pkg" / "mod",
    ]
    hits = [
        p
        for c in caches
        if c and Path(c).is_dir()
        for p in Path(c).glob(
            f"github.com/!google!container!tools/skaffold/v2@*/docs-v2/content/en/schemas/{name}"
        )
    ]
    return json.loads(max(hits).read_text()) if hits else None


def test_skaffold_yaml_validates_against_skaffolds_schema():
    sk = _load(SKAFFOLD)
    schema = _skaffold_schema(sk["apiVersion"])
    if schema is None:
        pytest.fail(
            "skaffold's JSON schemas are not in a Go module cache; fetch them with "
            "GOMODCACHE=~/.cache/celery-harder/go/mod go mod download "
            "github.com/GoogleContainerTools/skaffold/v2@v2.16.1"
        )
    validator = jsonschema.Draft7Validator(schema)
    assert not list(validator.iter_errors(sk))
    for prof in sk["profiles"]:
        assert not list(validator.iter_errors(_json_patch(sk, prof.get("patches", []))))
    bad = copy.deepcopy(sk)
    bad["deploy"]["helm"]["releases"][0]["setValueTemplatez"] = {}
    assert list(validator.iter_errors(bad)), "the schema should reject an unknown field"


def test_skaffold_builds_three_images_from_the_repo_root():
    sk = _load(SKAFFOLD)
    assert re.match(r"^skaffold/v4beta\d+$", sk["apiVersion"]) and sk["kind"] == "Config"
    artifacts = {a["image"]: a for a in sk["build"]["artifacts"]}
    assert set(artifacts) == {"celery-harder/api", "celery-harder/worker", "celery-harder/operator"}
    for image, a in artifacts.items():
        svc = image.split("/")[1]
        assert a["context"] == "."
        assert a["docker"]["dockerfile"] == f"services/{svc}/Dockerfile"
        assert (REPO / a["docker"]["dockerfile"]).is_file(), f"{a['docker']['dockerfile']} missing"
    assert sk["build"]["local"]["push"] is False


def test_skaffold_sets_every_image_through_set_value_templates():
    sk = _load(SKAFFOLD)
    (release,) = sk["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]).resolve() == CHART
    templates = release["setValueTemplates"]
    values = _load(CHART / "values.yaml")
    for a in sk["build"]["artifacts"]:
        svc = a["image"].split("/")[1]
        name = _sanitize(a["image"])
        assert templates[f"{svc}.image.repository"] == f"{{{{.IMAGE_REPO_{name}}}}}"
        assert templates[f"{svc}.image.tag"] == f"{{{{.IMAGE_TAG_{name}}}}}"
        assert values[svc]["image"]["repository"] == a["image"], (
            "chart default should match the artifact"
        )
    for key in list(templates) + list(release.get("setValues", {})):
        node = values
        for part in key.split("."):
            assert part in node, f"skaffold sets {key}, which values.yaml does not have"
            node = node[part]


@pytest.mark.parametrize(
    "profile,context", [("kind", "kind-celery-harder"), ("minikube", "minikube")]
)
def test_skaffold_profiles_apply_and_point_at_existing_values(profile, context):
    sk = _load(SKAFFOLD)
    (prof,) = [p for p in sk["profiles"] if p["name"] == profile]
    assert {"kubeContext": context} in prof["activation"]
    patched = _json_patch(sk, prof.get("patches", []))
    (release,) = patched["deploy"]["helm"]["releases"]
    assert release["valuesFiles"], f"profile {profile} sets no values file"
    for f in release["valuesFiles"]:
        assert (REPO / f).is_file(), f
    if profile == "kind":
        assert "portForward" not in patched, "kind maps the NodePorts; port-forwards would collide"


@pytest.mark.parametrize("helm", sorted(HELMS))
@pytest.mark.parametrize("profile", ["kind", "minikube"])
def test_chart_renders_as_skaffold_deploys_it(helm, profile):
    """Render like Skaffold's helm deployer: the profile's values files plus setValues and filled-in setValueTemplates."""  # noqa: E501
    sk = _load(SKAFFOLD)
    (prof,) = [p for p in sk["profiles"] if p["name"] == profile]
    (release,) = _json_patch(sk, prof.get("patches", []))["deploy"]["helm"]["releases"]
    env = {}
    for a in sk["build"]["artifacts"]:
        name = _sanitize(a["image"])
        env[f"IMAGE_REPO_{name}"] = a["image"]
        env[f"IMAGE_TAG_{name}"] = "3f2a9c1d"
    args = [
        "template",
        release["name"],
        str(REPO / release["chartPath"]),
        "--namespace",
        release["namespace"],
    ]
    for f in release["valuesFiles"]:
        args += ["-f", str(REPO / f)]
    for key, value in release.get("setValues", {}).items():
        args += ["--set-string", f"{key}={value}"]
    for key, tmpl in release["setValueTemplates"].items():
        value = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: env[m.group(1)], tmpl)
        args += ["--set-string", f"{key}={value}"]
    docs = [d for d in yaml.safe_load_all(run_helm(helm, *args).stdout) if d]
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Pod")
        for c in (d["spec"] if d["kind"] == "Pod" else d["spec"]["template"]["spec"])["containers"]
    }
    assert {
        "celery-harder/api:3f2a9c1d",
        "celery-harder/worker:3f2a9c1d",
        "celery-harder/operator:3f2a9c1d",
    } <= images
    for d in docs:
        if d["apiVersion"].startswith(("keda.sh", "monitoring.coreos.com")):
            continue  # custom resources: shape-checked in test_render_validate.py
        kubernetes_validate.validate(d, "1.35.0", strict=True)
    # the port-forwards name Services this render creates (Grafana's comes from kube-prometheus-stack)  # noqa: E501
    services = {
        (d["metadata"]["name"], p["port"])
        for d in docs
        if d["kind"] == "Service"
        for p in d["spec"]["ports"]
    }
    for pf in sk["portForward"]:
        if pf["namespace"] == release["namespace"]:
            assert (pf["resourceName"], pf["port"]) in services, pf
        else:
            assert (
                pf["resourceName"] == "kube-prometheus-stack-grafana"
                and pf["namespace"] == "monitoring"
            )


def _skaffold_binary():
    for cand in (
        os.environ.get("SKAFFOLD"),
        shutil.which("skaffold"),
        Path.home() / ".cache" / "celery-harder" / "skaffold" / "skaffold",
    ):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


@pytest.mark.parametrize("profile", ["kind", "minikube"])
def test_real_skaffold_renders_each_profile(profile, tmp_path):
    """`skaffold render` itself: profiles applied, helm run with the images, post-renderer run.

    skaffold drives helm 3 (it calls `helm version --client`, which helm 4 removed).
    """
    skaffold = _skaffold_binary()
    if skaffold is None:
        pytest.fail(
            "no skaffold binary ($SKAFFOLD, PATH or ~/.cache/celery-harder/skaffold/skaffold); "
            "it is built from its Go module, see that directory's README"
        )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "helm").symlink_to(chartlib_helm("helm3"))
    artifacts = tmp_path / "artifacts.json"
    sk = _load(SKAFFOLD)
    artifacts.write_text(
        json.dumps(
            {
                "builds": [
                    {"imageName": a["image"], "tag": f"{a['image']}:3f2a9c1d"}
                    for a in sk["build"]["artifacts"]
                ]
            }
        )
    )
    out = tmp_path / "rendered.yaml"
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "SKAFFOLD_UPDATE_CHECK": "false",
    }
    proc = subprocess.run(
        [
            skaffold,
            "render",
            "-p",
            profile,
            f"--build-artifacts={artifacts}",
            "--digest-source=tag",
            "--offline=true",
            "--output",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {
        "celery-harder/api:3f2a9c1d",
        "celery-harder/worker:3f2a9c1d",
        "celery-harder/operator:3f2a9c1d",
    } <= images
    api = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "celery-harder-api"
    )
    expected_type = "NodePort" if profile == "kind" else "ClusterIP"
    assert api["spec"]["type"] == expected_type


# ---------------------------------------------------------------- kind-up.sh


def run_kind_up(env: dict) -> subprocess.CompletedProcess:
    """scripts/kind-up.sh with the stubbed tools of `env`; never raises on failure."""
    return subprocess.run(
        [str(KIND_UP)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_kind_up_is_valid_bash():
    assert os.access(KIND_UP, os.X_OK), "scripts/kind-up.sh is not executable"
    text = KIND_UP.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(KIND_UP)], check=True)


def test_kind_up_passes_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.fail(
            "shellcheck is not installed (Debian package `shellcheck`); bash -n is checked above"
        )
    proc = subprocess.run(
        ["shellcheck", "-x", str(KIND_UP)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


STUB = textwrap.dedent("""\
    #!/usr/bin/env bash
    printf '%s %s\\n' "$(basename "$0")" "$*" >> "$STUB_LOG"
    case "$(basename "$0") $*" in
      "docker info"*) ;;
      "kind version"*) echo "kind v0.27.0 go1.23 linux/amd64" ;;
      "kind get clusters"*) [[ -f "$STUB_DIR/cluster" ]] && echo celery-harder ;;
      "kind create cluster"*) touch "$STUB_DIR/cluster" ;;
      "kubectl version"*) echo "Client Version: v1.35.2" ;;
      kubectl*" apply "*"-o name"*) echo "taskworkflow.celery-harder.io/chain-example" ;;
      kubectl*" get secret "*) printf 'flower-dev' | base64 ;;
      "helm version"*) echo "${STUB_HELM_VERSION:-v3.17.3}" ;;
      "skaffold version"*) echo "${STUB_SKAFFOLD_VERSION:-v2.16.1}" ;;
    esac
    exit 0
    """)


def _stub_env(tmp_path, tools=("docker", "kind", "kubectl", "helm", "skaffold")):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in tools:
        (bindir / tool).write_text(STUB)
        (bindir / tool).chmod(0o755)
    for tool in (
        "bash",
        "env",
        "basename",
        "dirname",
        "grep",
        "awk",
        "sed",
        "head",
        "base64",
        "cat",
        "touch",
        "printf",
    ):
        real = shutil.which(tool)
        if real and not (bindir / tool).exists():
            (bindir / tool).symlink_to(real)
    log = tmp_path / "calls.log"
    example = tmp_path / "chain.yaml"
    example.write_text(
        "apiVersion: celery-harder.io/v1alpha1\nkind: TaskWorkflow\nmetadata: {name: chain-example}\n"  # noqa: E501
    )
    env = {
        "PATH": str(bindir),
        "STUB_LOG": str(log),
        "STUB_DIR": str(tmp_path),
        "HOME": str(tmp_path),
        "EXAMPLE": str(example),
        "SKIP_PORT_CHECK": "1",
    }
    return env, log


def test_kind_up_runs_the_whole_t4_path_in_order(tmp_path):
    env, log = _stub_env(tmp_path)
    proc = run_kind_up(env)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()

    def index(pattern):
        for i, line in enumerate(calls):
            if re.search(pattern, line):
                return i
        raise AssertionError(f"no call matching {pattern!r} in:\n" + "\n".join(calls))

    steps = [
        r"^kind create cluster --name celery-harder --config \S+/kind-config.yaml",
        r"^helm repo add kedacore https://kedacore.github.io/charts",
        r"^helm repo add prometheus-community https://prometheus-community.github.io/helm-charts",
        r"^helm upgrade --install keda kedacore/keda .*--namespace keda .*--wait",
        r"^helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack .*--namespace monitoring",  # noqa: E501
        r"^skaffold run -p kind",
        r"^helm test celery-harder .*--namespace celery-harder",
        r"^kubectl .*apply -f \S+chain.yaml -o name",
        r"^kubectl .*wait --for=jsonpath=\{\.status\.phase\}=Succeeded taskworkflow.celery-harder.io/chain-example",  # noqa: E501
    ]
    order = [index(s) for s in steps]
    assert order == sorted(order), list(zip(steps, order, strict=True))
    kps = calls[index(r"kube-prometheus-stack prometheus-community")]
    assert "grafana.service.nodePort=30300" in kps and "ruleSelectorNilUsesHelmValues=false" in kps
    for url in ("http://localhost:8000", "http://localhost:5555", "http://localhost:3000"):
        assert url in proc.stdout
    assert "flower-dev" in proc.stdout
    assert 'curl -s -X POST localhost:8000/add -H "X-API-Key: flower-dev"' in proc.stdout
    assert index(r"get secret celery-harder-api-keys -o jsonpath=\{\.data\.api-key\}") > 0


def test_kind_up_reuses_an_existing_cluster(tmp_path):
    env, log = _stub_env(tmp_path)
    (tmp_path / "cluster").touch()
    proc = run_kind_up(env)
    assert proc.returncode == 0, proc.stderr
    assert "kind create cluster" not in log.read_text()


@pytest.mark.parametrize("missing", ["kind", "skaffold", "helm", "docker"])
def test_kind_up_checks_prerequisites(tmp_path, missing):
    env, log = _stub_env(
        tmp_path,
        tools=[t for t in ("docker", "kind", "kubectl", "helm", "skaffold") if t != missing],
    )
    proc = run_kind_up(env)
    assert proc.returncode != 0
    assert f"{missing} is not installed" in proc.stderr
    assert "create cluster" not in (log.read_text() if log.exists() else "")


def test_kind_up_requires_a_skaffold_that_reads_the_config(tmp_path):
    env, _log = _stub_env(tmp_path)
    env["STUB_SKAFFOLD_VERSION"] = "v2.10.0"
    proc = run_kind_up(env)
    assert proc.returncode != 0 and "skaffold v2.15+ is required" in proc.stderr
    assert re.search(r"^apiVersion: skaffold/v4beta13$", SKAFFOLD.read_text(), re.M)


def test_kind_up_refuses_helm4_that_skaffold_cannot_drive(tmp_path):
    env, _log = _stub_env(tmp_path)
    env["STUB_HELM_VERSION"] = "v4.1.4"
    proc = run_kind_up(env)
    assert proc.returncode != 0 and "helm 4" in proc.stderr
    env["ALLOW_HELM4"] = "1"
    proc = run_kind_up(env)
    assert proc.returncode == 0, proc.stderr


def test_kind_up_down_deletes_the_cluster(tmp_path):
    env, log = _stub_env(tmp_path)
    proc = subprocess.run(
        [str(KIND_UP), "--down"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == ["kind delete cluster --name celery-harder"]
