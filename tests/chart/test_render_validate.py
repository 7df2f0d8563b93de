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
uses, with additionalProperties false so a misspelt field fails. Acceptance by
a real API server with those CRDs loaded is the T2 test's job.
"""
import functools
import json

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest

from .chartlib import HELMS, MATRIX, render_case

K8S_VERSIONS = ["1.31.0", "1.35.0"]

# kubernetes-validate re-reads its (large) schema files for every object; cache them.
if not hasattr(kv_utils.schema_contents, "cache_info"):
    kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

STR = {"type": "string"}
INT = {"type": "integer"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
META = {"type": "object", "required": ["name"], "properties": {"name": STR, "labels": STRMAP, "annotations": STRMAP, "namespace": STR}}


def _obj(props, required=()):
    return {"type": "object", "additionalProperties": False, "properties": props, "required": list(required)}


CRD_SHAPES = {
    ("keda.sh/v1alpha1", "ScaledObject"): _obj({
        "apiVersion": STR, "kind": STR, "metadata": META,
        "spec": _obj({
            "scaleTargetRef": _obj({"apiVersion": STR, "kind": STR, "name": STR, "envSourceContainerName": STR}, ["name"]),
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "idleReplicaCount": INT, "pollingInterval": INT, "cooldownPeriod": INT, "initialCooldownPeriod": INT,
            "fallback": {"type": "object"},
            "advanced": _obj({
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "horizontalPodAutoscalerConfig": _obj({"name": STR, "behavior": {"type": "object"}}),
                "scalingModifiers": _obj({"formula": STR, "target": STR, "activationTarget": STR,
                                          "metricType": {"enum": ["AverageValue", "Value", "Utilization"]}}),
            }),
            "triggers": {"type": "array", "minItems": 1, "items": _obj({
                "type": STR, "name": STR, "useCachedMetrics": {"type": "boolean"},
                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                "authenticationRef": _obj({"name": STR, "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]}}, ["name"]),
                # KEDA's CRD types trigger metadata as map[string]string.
                "metadata": STRMAP,
            }, ["type", "metadata"])},
        }, ["scaleTargetRef", "triggers"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _obj({
        "apiVersion": STR, "kind": STR, "metadata": META,
        "spec": _obj({
            "secretTargetRef": {"type": "array", "items": _obj({"parameter": STR, "name": STR, "key": STR}, ["parameter", "name", "key"])},
            "env": {"type": "array"}, "podIdentity": {"type": "object"},
        }),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _obj({
        "apiVersion": STR, "kind": STR, "metadata": META,
        "spec": _obj({
            "selector": _obj({"matchLabels": STRMAP, "matchExpressions": {"type": "array"}}),
            "namespaceSelector": _obj({"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": STR}}),
            "jobLabel": STR,
            "endpoints": {"type": "array", "items": _obj({
                "port": STR, "targetPort": {"type": ["string", "integer"]}, "path": STR, "scheme": STR,
                "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                "scrapeTimeout": STR, "honorLabels": {"type": "boolean"}, "relabelings": {"type": "array"},
                "metricRelabelings": {"type": "array"},
            })},
        }, ["selector", "endpoints"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _obj({
        "apiVersion": STR, "kind": STR, "metadata": META,
        "spec": _obj({"groups": {"type": "array", "items": _obj({
            "name": STR, "interval": STR, "limit": INT,
            "rules": {"type": "array", "items": _obj({
                "alert": STR, "record": STR, "expr": {"type": ["string", "integer"]}, "for": STR,
                "keep_firing_for": STR, "labels": STRMAP, "annotations": STRMAP,
            }, ["expr"])},
        }, ["name", "rules"])}}),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}

CASES = [(h, c) for h in sorted(HELMS) for c in MATRIX]


@functools.lru_cache(maxsize=None)
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
            errors.append(f"{ident}: no schema ({e.message}); add a shape to CRD_SHAPES if it is a custom resource")
        except jsonschema.ValidationError as e:
            errors.append(f"{ident}: {e.message} at {'/'.join(map(str, e.absolute_path))}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("helm,case", CASES)
def test_custom_resources_present_only_when_enabled(helm, case):
    render = render_case(helm, case)
    kinds = {d["kind"] for d in render.docs}
    keda = case != "keda-off"
    assert ("ScaledObject" in kinds) is keda and ("TriggerAuthentication" in kinds) is keda
    monitoring = case in ("monitoring-on", "ci-kind")
    assert ("ServiceMonitor" in kinds) is monitoring and ("PrometheusRule" in kinds) is monitoring


def test_shape_schemas_reject_a_misspelt_field():
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"name": "w"}, "minReplicas": 0,
                    "triggers": [{"type": "redis", "metadata": {"listName": "celery"}}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, CRD_SHAPES[("keda.sh/v1alpha1", "ScaledObject")])


def test_kubernetes_validate_rejects_a_misspelt_field():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"selektor": {"a": "b"}, "ports": [{"port": 80}]}}
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
