"""T0: a CronTaskWorkflow's runs and status, and the operator's test clock (pure functions)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from celery_harder.settings import get_settings
from celery_harder_operator import clock
from celery_harder_operator import cron_resource as cr
from celery_harder_operator import cron_status as cst
from celery_harder_operator import schedule as sch
from tests.support.kube import REPO_ROOT

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CRD = REPO_ROOT / "charts/celery-harder/crds/crontaskworkflows.celery-harder.io.yaml"
TEMPLATE = {
    "metadata": {"labels": {"team": "data", cr.OWNER_LABEL: "spoofed"},
                 "annotations": {"note": "hi"}},
    "spec": {"workflow": {"task": "add", "args": [1, 2]}, "timeoutSeconds": 60},
}  # fmt: skip


def test_run_manifest_names_labels_and_copies_the_template() -> None:
    run = cr.run_manifest("nightly", TEMPLATE, T0)
    assert run["apiVersion"] == "celery-harder.io/v1alpha1" and run["kind"] == "TaskWorkflow"
    assert run["metadata"]["name"] == sch.run_name("nightly", T0)
    # the owner label is the operator's, whatever the template says
    assert run["metadata"]["labels"] == {"team": "data", cr.OWNER_LABEL: "nightly"}
    assert run["metadata"]["annotations"] == {
        "note": "hi",
        cr.SCHEDULED_ANNOTATION: "2026-03-02T12:00:00Z",
    }
    assert run["spec"] == TEMPLATE["spec"]
    run["spec"]["workflow"]["args"].append(3)
    assert TEMPLATE["spec"]["workflow"]["args"] == [1, 2], "the template was shared, not copied"


def test_owner_uid_reads_only_a_controlling_cron_reference() -> None:
    ref = {"kind": cr.CRON_KIND, "uid": "u1", "controller": True, "name": "n"}
    assert cr.owner_uid({"ownerReferences": [ref]}) == "u1"
    assert cr.owner_uid({"ownerReferences": [dict(ref, controller=False)]}) is None
    assert cr.owner_uid({"ownerReferences": [dict(ref, kind="CronJob")]}) is None
    assert cr.owner_uid({}) is None


def test_run_of_reads_the_index_entry() -> None:
    annotations = {cr.SCHEDULED_ANNOTATION: "2026-03-02T12:00:00Z"}
    meta = {"name": "n-1", "uid": "u", "annotations": annotations}
    run = cr.run_of(meta, {"shutdown": "Terminate"},
                    {"phase": "Succeeded", "finishedAt": "2026-03-02T12:00:05Z"})  # fmt: skip
    assert run == sch.Run("n-1", "u", T0, "Succeeded", T0 + timedelta(seconds=5), stopping=True)
    assert run.finished


def test_spec_defaults_match_the_crd() -> None:
    """The operator's defaults for a missing field are the ones the API server fills in."""
    spec = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    fields = spec["properties"]["spec"]["properties"]
    cron = cr.cron_spec({"schedule": "* * * * *"})
    assert fields["timeZone"]["default"] == cron.time_zone == "UTC"
    assert fields["concurrencyPolicy"]["default"] == cron.policy == "Allow"
    assert fields["concurrencyPolicy"]["enum"] == list(sch.CONCURRENCY_POLICIES)
    assert fields["suspend"]["default"] is cron.suspend is False
    assert fields["successfulRunsHistoryLimit"]["default"] == cron.successful_limit == 3
    assert fields["failedRunsHistoryLimit"]["default"] == cron.failed_limit == 1
    assert cron.deadline_seconds is None


def status_after(decision: sch.Decision, runs=(), previous=None, **kw) -> dict:
    return cst.schedule_status(
        previous or {}, decision=decision, last_schedule=kw.get("last", T0),
        next_time=kw.get("next", T0 + timedelta(minutes=1)), runs=list(runs),
        namespace="ns", generation=2, now=T0,
    )  # fmt: skip


def test_status_lists_active_runs_and_counts_missed_ones() -> None:
    runs = [sch.Run("a", "ua", T0, "Running"), sch.Run("b", "ub", T0 - timedelta(minutes=1),
            "Succeeded", finished_at=T0)]  # fmt: skip
    status = status_after(sch.Decision("start", T0, missed=2, missed_through=T0), runs,
                          {"missedRuns": 3})  # fmt: skip
    assert status["active"] == [{
        "apiVersion": "celery-harder.io/v1alpha1", "kind": "TaskWorkflow", "name": "a",
        "namespace": "ns", "uid": "ua", "scheduledTime": "2026-03-02T12:00:00Z",
    }]  # fmt: skip
    assert status["activeCount"] == 1
    assert status["missedRuns"] == 5 and status["lastMissedTime"] == "2026-03-02T12:00:00Z"
    assert status["lastScheduleTime"] == "2026-03-02T12:00:00Z"
    assert status["lastSuccessfulTime"] == "2026-03-02T12:00:00Z"
    assert status["nextScheduleTime"] == "2026-03-02T12:01:00Z"
    (ready,) = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Scheduled")
    assert ready["observedGeneration"] == 2


def test_status_active_list_is_bounded() -> None:
    runs = [sch.Run(f"r{i}", f"u{i}", T0 + timedelta(minutes=i), None) for i in range(150)]
    status = status_after(sch.Decision("none"), runs)
    assert status["activeCount"] == 150 and len(status["active"]) == cst.ACTIVE_MAX
    assert status["active"][-1]["name"] == "r149"  # the newest are kept


def test_suspended_and_waiting_show_in_the_ready_condition() -> None:
    (ready,) = status_after(sch.Decision("suspended"), next=None)["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert status_after(sch.Decision("suspended"), next=None)["nextScheduleTime"] is None
    waiting = sch.Decision("wait", T0, reason="concurrencyPolicy Forbid: x is still running")
    (ready,) = status_after(waiting)["conditions"]
    assert (ready["status"], ready["reason"]) == ("True", "Waiting")
    assert "Forbid" in ready["message"]


def test_invalid_status_and_its_event_once() -> None:
    status = cst.invalid_status({}, "bad schedule", 1, T0)
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ValidationFailed", "bad schedule"
    )  # fmt: skip
    assert cst.became_invalid({}, "bad schedule")
    assert not cst.became_invalid(status, "bad schedule")
    assert cst.became_invalid(status, "another problem")


@pytest.fixture
def clock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "clock"
    monkeypatch.setenv("CELERY_HARDER_OPERATOR_CLOCK_FILE_FOR_TESTS", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_clock_is_real_time_unless_a_test_sets_it(clock_file: Path) -> None:
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)  # no file yet: the real time
    clock_file.write_text("2030-01-01T00:00:00Z\n")
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    clock_file.write_text("")
    assert clock.now() >= before


def test_clock_setting_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_HARDER_OPERATOR_CLOCK_FILE_FOR_TESTS", raising=False)
    get_settings.cache_clear()
    try:
        assert get_settings().operator_clock_file_for_tests is None
    finally:
        get_settings.cache_clear()
