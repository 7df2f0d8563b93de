"""T0: kopf's state on a TaskWorkflow costs no write of its own (kopf_state.py)."""

import kopf

from celery_harder_operator.kopf_state import (
    PhaseDiffBaseStorage,
    ProgressAnnotations,
    drop_lone_marker,
)

PREFIX = "celery-harder.io"
MARKER = f"{PREFIX}/kopf-managed"


def body(status: dict | None = None, annotations: dict | None = None) -> kopf.Body:
    raw = {"apiVersion": "celery-harder.io/v1alpha1", "kind": "TaskWorkflow",
           "metadata": {"name": "w", "annotations": annotations or {}},
           "spec": {"workflow": {"task": "add", "args": [1, 1]}}}  # fmt: skip
    if status is not None:
        raw["status"] = status
    return kopf.Body(raw)


def test_a_resource_without_a_phase_is_new_and_one_with_a_phase_is_unchanged() -> None:
    storage = PhaseDiffBaseStorage()
    assert storage.fetch(body=body()) is None
    assert storage.fetch(body=body({"workflowId": "x"})) is None
    handled = body({"phase": "Running"})
    assert storage.fetch(body=handled) == storage.build(body=handled)


def test_storing_the_diff_base_writes_nothing() -> None:
    patch = kopf.Patch()
    storage = PhaseDiffBaseStorage()
    storage.store(body=body(), patch=patch, essence=storage.build(body=body()))
    assert dict(patch) == {}


def test_a_record_purged_in_the_same_patch_leaves_no_patch_behind() -> None:
    """A handler that succeeds at its first try: kopf stores its record, then purges it."""
    storage, resource, patch = ProgressAnnotations(prefix=PREFIX), body(), kopf.Patch()
    storage.store(key="dispatch", record={"success": True}, body=resource, patch=patch)
    assert MARKER in patch["metadata"]["annotations"]  # kopf's own behaviour, the control
    storage.purge(key="dispatch", body=resource, patch=patch)
    assert dict(patch) == {}


def test_the_marker_stays_beside_a_record_that_stays() -> None:
    """A handler that will be retried keeps its record, and the marker goes with it."""
    storage, resource, patch = ProgressAnnotations(prefix=PREFIX), body(), kopf.Patch()
    storage.store(key="dispatch", record={"retries": 1}, body=resource, patch=patch)
    storage.store(key="other", record={"success": True}, body=resource, patch=patch)
    storage.purge(key="other", body=resource, patch=patch)
    annotations = patch["metadata"]["annotations"]
    assert annotations[MARKER] == "yes"
    assert any(k.endswith("dispatch") for k in annotations)


def test_a_marker_already_on_the_resource_and_other_fields_are_left_alone() -> None:
    patch = {"metadata": {"annotations": {MARKER: "yes"}, "labels": {"a": "b"}}}
    drop_lone_marker(patch, {MARKER: "yes"}, PREFIX)
    assert patch["metadata"]["annotations"] == {MARKER: "yes"}
    drop_lone_marker(patch, {}, PREFIX)
    assert patch == {"metadata": {"labels": {"a": "b"}}}


def test_a_patch_that_only_removes_records_adds_no_marker() -> None:
    """A record being removed (None) is not one kept: the new marker would mark nothing."""
    patch = {"metadata": {"annotations": {MARKER: "yes", f"{PREFIX}/dispatch": None}}}
    drop_lone_marker(patch, {f"{PREFIX}/dispatch": "{}"}, PREFIX)
    assert patch == {"metadata": {"annotations": {f"{PREFIX}/dispatch": None}}}
