"""values.schema.json, render-time validation, and the values documentation."""

import json

import pytest
import yaml

from . import values_doc
from .chartlib import CHART, HELMS, render_fails

HELM_LIST = sorted(HELMS)


@pytest.mark.parametrize("helm", HELM_LIST)
@pytest.mark.parametrize(
    "typo,where",
    [
        ("worker.concurency=4", "concurency"),
        ("keda.minReplicas=0", "minReplicas"),
        ("redis.persistance.enabled=false", "persistance"),
        ("apiImage=x", "apiImage"),
    ],
)
def test_schema_rejects_a_typo(helm, typo, where):
    err = render_fails(helm, typo)
    assert "schema" in err and where in err, err


@pytest.mark.parametrize("helm", HELM_LIST)
@pytest.mark.parametrize(
    "bad,expect",
    [
        ("api.image.tag=latest", "latest"),
        ("redis.auth.password=p@ss/word", "redis"),
        ("celery.queue=a\\,b", "queue"),
        ("keda.minReplicaCount=-1", "minReplicaCount"),
        ("worker.pdb.maxUnavailable=0", "maxUnavailable"),
        # test-only settings (the operator's stopped clock) cannot come from the chart
        ("celery.extraEnv.CELERY_HARDER_OPERATOR_CLOCK_FILE_FOR_TESTS=/tmp/t", "FOR_TESTS"),
    ],
)
def test_schema_rejects_bad_values(helm, bad, expect):
    err = render_fails(helm, bad)
    assert expect in err, err


@pytest.mark.parametrize("helm", HELM_LIST)
@pytest.mark.parametrize(
    "sets,message",
    [
        (
            ("worker.terminationGracePeriodSeconds=100",),
            "must be at least celery.taskTimeLimit + celery.softShutdownTimeout (330)",
        ),
        (("celery.taskSoftTimeLimit=300",), "must be below celery.taskTimeLimit"),
        (
            ("celery.visibilityTimeout=300",),
            "must exceed celery.taskTimeLimit + celery.softShutdownTimeout",
        ),
        (
            ("redis.enabled=false", "externalRedis.host=r"),
            "externalRedis.password or externalRedis.existingSecret",
        ),
        (("redis.enabled=false",), "externalRedis.host is required"),
        (("keda.minReplicaCount=5", "keda.maxReplicaCount=2"), "must not exceed"),
        (("worker.image.tag=latest",), "latest"),
    ],
)
def test_render_time_checks_fail_with_a_clear_message(helm, sets, message):
    err = render_fails(helm, *sets)
    assert message in err, err


def test_schema_closes_every_object():
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = []

    def walk(node, path):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and node.get("additionalProperties") is not False
            ):
                open_objects.append(path or "/")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "")
    assert not open_objects, f"objects without additionalProperties: false: {open_objects}"


def test_schema_covers_every_default_value():
    """Every key of values.yaml is declared in the schema (the schema's closed objects would otherwise reject the defaults)."""  # noqa: E501
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []

    def walk(v, s, path):
        if isinstance(v, dict) and "properties" in s:
            for k, sub in v.items():
                if k not in s["properties"]:
                    missing.append(f"{path}.{k}")
                else:
                    walk(sub, s["properties"][k], f"{path}.{k}")

    walk(values, schema, "")
    assert not missing, missing


def test_every_value_has_a_doc_comment():
    entries, undocumented = values_doc.parse()
    assert not undocumented, f"values without a `# --` comment: {undocumented}"
    assert len(entries) > 50


def test_readme_values_table_is_in_sync():
    assert values_doc.check(), "run: python tests/chart/values_doc.py --write"
    readme = (CHART / "README.md").read_text()
    for entry in values_doc.parse()[0]:
        assert f"| {entry.path} |" in readme


def test_readme_explains_scaling_and_scale_in():
    readme = (CHART / "README.md").read_text()
    for phrase in (
        "\\x06\\x16",
        "keda#7066",
        "Scale-to-zero caveats",
        "ETA",
        "unacked",
        "prefetch",
        "terminationGracePeriodSeconds",
        "acks_late",
        "reject_on_worker_lost",
        "visibility timeout",
        "pollingInterval",
        "cooldownPeriod",
        "minReplicaCount",
    ):
        assert phrase in readme, phrase
