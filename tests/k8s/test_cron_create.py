"""T2: a run's create against the real kube-apiserver: a name already taken is no second run.

The operator's index normally knows a run before the timer looks again, so a restarted
operator adopts it without a create (test_cron_operator.py). This calls the create path
itself, as an index that lags would: the same `create_run` twice, and once for a name
another object holds. Only kopf's Event poster is replaced (it needs a running operator).
"""

import uuid
from datetime import UTC, datetime

import kopf
import pytest

from celery_harder_operator import cron_handlers
from celery_harder_operator.cron_resource import run_manifest
from tests.support.cron import ctw

SCHEDULED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch, kube_api) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(cron_handlers, "event", lambda body, reason, *a, **k: seen.append(reason))
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    return seen


def owner(kube_api, ns: str) -> kopf.Body:
    name = f"owner-{uuid.uuid4().hex[:6]}"
    kube_api.apply(ctw(name, {"task": "add", "args": [1, 2]}, suspend=True), "-n", ns)
    return kopf.Body(kube_api.kubectl_json("get", "ctw", name, "-n", ns))


def test_create_that_meets_its_own_run_is_done(
    kube_api, taskworkflow_crd, kube_namespace, events
) -> None:
    body = owner(kube_api, kube_namespace)
    uid = body.metadata.uid or ""
    template = body.spec["workflowTemplate"]
    make = lambda: run_manifest(body.metadata.name or "", template, SCHEDULED)  # noqa: E731
    first = cron_handlers.create_run(body, kube_namespace, make(), uid)
    again = cron_handlers.create_run(body, kube_namespace, make(), uid)
    assert first is not None and again is not None
    assert again.uid == first.uid and again.name == first.name
    assert events == ["RunCreated", "RunExists"]
    items = kube_api.kubectl_json("get", "tw", "-n", kube_namespace)["items"]
    assert [i["metadata"]["name"] for i in items] == [first.name]


def test_a_name_held_by_another_object_is_not_adopted(
    kube_api, taskworkflow_crd, kube_namespace, events
) -> None:
    body = owner(kube_api, kube_namespace)
    manifest = run_manifest(body.metadata.name or "", body.spec["workflowTemplate"], SCHEDULED)
    squatter = {**manifest, "metadata": {"name": manifest["metadata"]["name"]}}
    kube_api.apply(squatter, "-n", kube_namespace)
    assert cron_handlers.create_run(body, kube_namespace, manifest, body.metadata.uid or "") is None
    assert events == ["RunNameTaken"]
    held = kube_api.kubectl_json("get", "tw", manifest["metadata"]["name"], "-n", kube_namespace)
    assert "ownerReferences" not in held["metadata"]
