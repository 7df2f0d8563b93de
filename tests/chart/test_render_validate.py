"""Every rendered object validates against the Kubernetes OpenAPI schemas.

The matrix (tests/chart/values/*.yaml: defaults, KEDA off, external Redis,
monitoring on, auth on, scale-to-zero; plus the kind and minikube values
in charts/celery-harder/ci/) is rendered with helm 4 and helm 3,
and each object is checked with kubernetes-validate (strict: unknown fields are
errors) for two Kubernetes minor versions.

kubernetes-validate only knows built-in kinds. The custom resources the chart
renders (KEDA's ScaledObject/TriggerAuthentication, the Prometheus Operator's
ServiceMonitor/PrometheusRule) are checked instead against the shape schemas in
CRD_SHAPES below, written from those projects' CRDs for the fields the chart
uses, with additionalProperties false so a misspelt field fails, and, when the
upstream CRD files are in a Go module cache, against those CRDs' own
openAPIV3Schema (see the end of this file). Acceptance by a real API server
with those CRDs loaded is the T2 test's job.
"""

import functools
import json
import os
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
import yaml

from .chartlib import HELMS, MATRIX, render_case

K8S_VERSIONS = ["1.31.0", "1.35.0"]

# kubernetes-validate re-reads its (large) schema files for every object; cache them.
if not hasattr(kv_utils.schema_contents, "cache_info"):
    kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

STR = {"type": "string"}
INT = {"type": "integer"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": STR, "labels": STRMAP, "annotations": STRMAP, "namespace": STR},
}


def _obj(props, required=()):
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": list(required),
    }


CRD_SHAPES = {
    ("keda.sh/v1alpha1", "ScaledObject"): _obj(
        {
            "apiVersion": STR,
            "kind": STR,
            "metadata": META,
            "spec": _obj(
                {
                    "scaleTargetRef": _obj(
                        {
                            "apiVersion": STR,
                            "kind": STR,
                            "name": STR,
                            "envSourceContainerName": STR,
                        },
                        ["name"],
                    ),
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "idleReplicaCount": INT,
                    "pollingInterval": INT,
                    "cooldownPeriod": INT,
                    "initialCooldownPeriod": INT,
                    "fallback": {"type": "object"},
                    "advanced": _obj(
                        {
                            "restoreToOriginalReplicaCount": {"type": "boolean"},
                            "horizontalPodAutoscalerConfig": _obj(
                                {"name": STR, "behavior": {"type": "object"}}
                            ),
                            "scalingModifiers": _obj(
                                {
                                    "formula": STR,
                                    "target": STR,
                                    "activationTarget": STR,
                                    "metricType": {
                                        "enum": ["AverageValue", "Value", "Utilization"]
                                    },
                                }
                            ),
                        }
                    ),
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": _obj(
                            {
                                "type": STR,
                                "name": STR,
                                "useCachedMetrics": {"type": "boolean"},
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "authenticationRef": _obj(
                                    {
                                        "name": STR,
                                        "kind": {
                                            "enum": [
                                                "TriggerAuthentication",
                                                "ClusterTriggerAuthentication",
                                            ]
                                        },
                                    },
                                    ["name"],
                                ),
                                # KEDA's CRD types trigger metadata as map[string]string.
                                "metadata": STRMAP,
                            },
                            ["type", "metadata"],
                        ),
                    },
                },
                ["scaleTargetRef", "triggers"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _obj(
        {
            "apiVersion": STR,
            "kind": STR,
            "metadata": META,
            "spec": _obj(
                {
                    "secretTargetRef": {
                        "type": "array",
                        "items": _obj(
                            {"parameter": STR, "name": STR, "key": STR},
                            ["parameter", "name", "key"],
                        ),
                    },
                    "env": {"type": "array"},
                    "podIdentity": {"type": "object"},
                }
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _obj(
        {
            "apiVersion": STR,
            "kind": STR,
            "metadata": META,
            "spec": _obj(
                {
                    "selector": _obj(
                        {"matchLabels": STRMAP, "matchExpressions": {"type": "array"}}
                    ),
                    "namespaceSelector": _obj(
                        {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": STR}}
                    ),
                    "jobLabel": STR,
                    "endpoints": {
                        "type": "array",
                        "items": _obj(
                            {
                                "port": STR,
                                "targetPort": {"type": ["string", "integer"]},
                                "path": STR,
                                "scheme": STR,
                                "interval": {
                                    "type": "string",
                                    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",  # noqa: E501
                                },
                                "scrapeTimeout": STR,
                                "honorLabels": {"type": "boolean"},
                                "relabelings": {"type": "array"},
                                "metricRelabelings": {"type": "array"},
                            }
                        ),
                    },
                },
                ["selector", "endpoints"],
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _obj(
        {
            "apiVersion": STR,
            "kind": STR,
            "metadata": META,
            "spec": _obj(
                {
                    "groups": {
                        "type": "array",
                        "items": _obj(
                            {
                                "name": STR,
                                "interval": STR,
                                "limit": INT,
                                "rules": {
                                    "type": "array",
                                    "items": _obj(
                                        {
                                            "alert": STR,
                                            "record": STR,
                                            "expr": {"type": ["string", "integer"]},
                                            "for": STR,
                                            "keep_firing_for": STR,
                                            "labels": STRMAP,
                                            "annotations": STRMAP,
                                        },
                                        ["expr"],
                                    ),
                                },
                            },
                            ["name", "rules"],
                        ),
                    }
                }
            ),
        },
        ["apiVersion", "kind", "metadata", "spec"],
    ),
}

CASES = [(h, c) for h in sorted(HELMS) for c in MATRIX]


@functools.cache
def _validate_cached(doc_json: str, version: str):
    doc = json.loads(doc_json)
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SHAPES:
        jsonschema.validate(doc, CRD_SHAPES[key])
        return "shape"
    kubernetes_validate.validate(doc, version, strict=True)
    return "openapi"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("helm,case", CASES)
def test_every_object_validates(helm, case, version):
    render = render_case(helm, case)
    assert render.docs, "nothing rendered"
    errors = []
    for doc in render.docs:
        ident = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            _validate_cached(json.dumps(doc, sort_keys=True), version)
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(
                f"{ident}: no schema ({e.message}); add a shape to CRD_SHAPES if it is a custom resource"  # noqa: E501
            )
        except jsonschema.ValidationError as e:
            errors.append(f"{ident}: {e.message} at {'/'.join(map(str, e.absolute_path))}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("helm,case", CASES)
def test_custom_resources_present_only_when_enabled(helm, case):
    render = render_case(helm, case)
    kinds = {d["kind"] for d in render.docs}
    keda = case not in ("keda-off", "pools-keda-off")
    assert ("ScaledObject" in kinds) is keda and ("TriggerAuthentication" in kinds) is keda
    monitoring = case in ("monitoring-on", "ci-kind")
    assert ("ServiceMonitor" in kinds) is monitoring and ("PrometheusRule" in kinds) is monitoring


def test_shape_schemas_reject_a_misspelt_field():
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "minReplicas": 0,
            "triggers": [{"type": "redis", "metadata": {"listName": "celery"}}],
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, CRD_SHAPES[("keda.sh/v1alpha1", "ScaledObject")])


def test_kubernetes_validate_rejects_a_misspelt_field():
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"selektor": {"a": "b"}, "ports": [{"port": 80}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


# ---------------------------------------------------------------------------
# The same custom resources against the upstream CRDs' openAPIV3Schema, when the
# CRD files are in a Go module cache (the T2 tests load the same files into a
# real API server). Fetch them with:
#   GOMODCACHE=~/.cache/celery-harder/go/mod go mod download \
#     github.com/kedacore/keda/v2@v2.21.0 github.com/prometheus-operator/prometheus-operator@v0.85.0

UPSTREAM_CRDS = {
    (
        "keda.sh/v1alpha1",
        "ScaledObject",
    ): "github.com/kedacore/keda/v2@*/config/crd/bases/keda.sh_scaledobjects.yaml",
    (
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
    ): "github.com/kedacore/keda/v2@*/config/crd/bases/keda.sh_triggerauthentications.yaml",
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    ): "github.com/prometheus-operator/prometheus-operator@*/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",  # noqa: E501
    (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    ): "github.com/prometheus-operator/prometheus-operator@*/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",  # noqa: E501
}


def _mod_caches():
    seen = []
    for p in (
        os.environ.get("GOMODCACHE"),
        Path.home() / ".cache" / "celery-harder" / "go" / "mod",
        Path.home() / "go" / "pkg" / "mod",
    ):
        if p and Path(p).is_dir() and Path(p) not in seen:
            seen.append(Path(p))
    return seen


def _version_key(path):
    m = re.search(r"@v(\d+)\.(\d+)\.(\d+)", str(path))
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def _find_crd(pattern):
    hits = [p for cache in _mod_caches() for p in cache.glob(pattern)]
    return max(hits, key=_version_key) if hits else None


def _strict(node):
    """CRD structural schema -> JSON Schema that rejects unknown fields (like kubectl --validate=strict)."""  # noqa: E501
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _strict(v)
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k not in ("nullable", "format")
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _upstream_validator(api_version, kind):
    path = _find_crd(UPSTREAM_CRDS[(api_version, kind)])
    if path is None:
        return None, None
    crd = yaml.safe_load(path.read_text())
    _group, version = api_version.split("/")
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(ver["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema), path


@pytest.mark.parametrize("kind", sorted(UPSTREAM_CRDS))
def test_custom_resources_validate_against_the_upstream_crds(kind):
    validator, path = _upstream_validator(*kind)
    if validator is None:
        pytest.fail(
            f"{kind[1]} CRD not in a Go module cache ({UPSTREAM_CRDS[kind].split('@')[0]}); "
            "see the comment above this test for the go mod download command"
        )
    checked = 0
    for helm, case in CASES:
        for doc in render_case(helm, case).docs:
            if (doc["apiVersion"], doc["kind"]) == kind:
                errors = [
                    f"{e.message} at {'/'.join(map(str, e.absolute_path))}"
                    for e in validator.iter_errors(doc)
                ]
                assert not errors, (
                    f"{case}/{helm}: {doc['kind']}/{doc['metadata']['name']} vs {path}:\n"
                    + "\n".join(errors)
                )
                checked += 1
    assert checked, f"no {kind[1]} rendered in the matrix"


def test_upstream_crd_check_rejects_a_misspelt_field():
    validator, _ = _upstream_validator("keda.sh/v1alpha1", "ScaledObject")
    if validator is None:
        pytest.fail("KEDA CRD not in a Go module cache: run scripts/install-test-deps.sh")
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "pollingIntervall": 5,
            "triggers": [{"type": "redis", "metadata": {"listName": "celery"}}],
        },
    }
    assert list(validator.iter_errors(bad))
