"""T2: CronTaskWorkflow schedules, with a real kube-apiserver, `kopf run`, worker and Redis.

The operator runs with a stopped clock (CELERY_HARDER_OPERATOR_CLOCK_FILE_FOR_TESTS, an
environment variable no chart value sets) that each test moves from minute to minute,
so every-minute schedules are shown without waiting minutes. Everything else is real:
the runs are TaskWorkflows created through the API server and run by the worker.

The T2 control plane has no kube-controller-manager, so no garbage collector deletes a
CronTaskWorkflow's runs here: these tests check the owner reference, and
tests/k8s/test_cron_gc.py starts a garbage collector to show the deletion.
"""

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from celery_harder import keys
from celery_harder_operator.cron_resource import OWNER_LABEL, SCHEDULED_ANNOTATION
from celery_harder_operator.schedule import format_time, parse_schedule
from tests.k8s.test_operator import condition, wait_final
from tests.support import cron
from tests.support.cron import StoppedClock, get_ctw, minute_after, run_names, wait_for
from tests.support.examples import SCHEDULE_EXAMPLES, SCHEDULE_EXPECTED
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.stack import RedisServer, StackEnv, Worker

ADD = {"chain": [{"task": "add", "args": [2, 3]}, {"task": "mul", "args": [10]}]}
LONG = {"task": "sleep", "args": [30]}


@pytest.fixture(scope="module")
def clock(tmp_path_factory: pytest.TempPathFactory) -> StoppedClock:
    return StoppedClock(tmp_path_factory.mktemp("clock") / "now")


@pytest.fixture(scope="module")
def operator(
    kube_api, taskworkflow_crd, stack: StackEnv, worker: Worker, clock: StoppedClock
) -> Iterator[OperatorProcess]:
    clock.hold_before(cron.real_now())
    with running_operator(stack, kube_api.env(), cron.operator_env(clock)) as process:
        yield process


@pytest.fixture
def ns(kube_api, operator, kube_namespace: str, clock: StoppedClock) -> Iterator[str]:
    """A namespace whose CronTaskWorkflows and runs are stopped at the end of the test.

    The clock is shared by the module: a schedule left behind would start runs in the
    next test's minutes.
    """
    clock.hold_before(cron.real_now())
    yield kube_namespace
    kube_api.kubectl("delete", "ctw", "--all", "-n", kube_namespace, "--wait=true",
                     "--timeout=60s", timeout=90)  # fmt: skip
    for run in kube_api.kubectl_json("get", "tw", "-n", kube_namespace)["items"]:
        if run.get("status", {}).get("phase") not in ("Succeeded", "Failed", "Cancelled"):
            kube_api.kubectl("patch", "tw", run["metadata"]["name"], "-n", kube_namespace,
                             "--type=merge", "-p", '{"spec":{"shutdown":"Terminate"}}')  # fmt: skip


def make(kube_api, ns: str, manifest: dict) -> tuple[str, dict]:
    """Create a CronTaskWorkflow and wait for the operator's first status."""
    kube_api.apply(manifest, "-n", ns)
    name = manifest["metadata"]["name"]
    obj = wait_for(f"{name} has a status", lambda: get_ctw(kube_api, ns, name).get("status") and
                   get_ctw(kube_api, ns, name))  # fmt: skip
    return name, obj


def status(kube_api, ns: str, name: str) -> dict:
    return get_ctw(kube_api, ns, name).get("status", {})


def run_at(name: str, moment) -> str:
    return f"{name}-{cron.minutes_since_epoch(moment)}"


def test_runs_are_created_on_time_with_an_owner_reference(
    kube_api, operator, ns, clock: StoppedClock
) -> None:
    name, obj = make(kube_api, ns, cron.ctw("every-minute", ADD))
    first = minute_after(cron.created(obj))
    assert status(kube_api, ns, name)["nextScheduleTime"] == format_time(first)
    ready = condition(status(kube_api, ns, name), "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")

    clock.set(first - timedelta(seconds=1))
    cron.wait_ticks(operator, ns, name)
    assert run_names(kube_api, ns, name) == [], "a run started before its time"

    clock.set(first)
    wait_for("the first run", lambda: run_names(kube_api, ns, name))
    (run,) = cron.runs(kube_api, ns, name)
    assert run["metadata"]["name"] == run_at(name, first)
    assert run["metadata"]["annotations"][SCHEDULED_ANNOTATION] == format_time(first)
    assert run["metadata"]["labels"][OWNER_LABEL] == name
    assert run["metadata"]["ownerReferences"] == [{
        "apiVersion": "celery-harder.io/v1alpha1", "kind": "CronTaskWorkflow", "name": name,
        "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }]  # fmt: skip
    assert run["spec"] == {"workflow": ADD}
    done = wait_final(kube_api, ns, run["metadata"]["name"])
    assert (done["phase"], done["result"]) == ("Succeeded", 50)

    second = minute_after(first)
    clock.set(second + timedelta(seconds=1))
    wait_for("the second run", lambda: len(run_names(kube_api, ns, name)) == 2)
    assert run_names(kube_api, ns, name) == [run_at(name, first), run_at(name, second)]
    wait_final(kube_api, ns, run_at(name, second))
    cron.wait_ticks(operator, ns, name)
    now = status(kube_api, ns, name)
    assert now["lastScheduleTime"] == format_time(second)
    assert now["nextScheduleTime"] == format_time(minute_after(second))
    assert now["lastSuccessfulTime"] and now["activeCount"] == 0 and now["active"] == []
    assert now.get("missedRuns", 0) == 0
    assert cron.events(kube_api, ns, name).count("RunCreated") == 2
    table = kube_api.kubectl("get", "ctw", name, "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE",
                                "AGE"]  # fmt: skip
    assert table[1].split()[:7] == [name, "*", "*", "*", "*", "*", "false"]


def test_forbid_skips_a_run_while_one_is_active(kube_api, operator, ns, clock) -> None:
    name, obj = make(kube_api, ns, cron.ctw(
        "forbid", LONG, concurrencyPolicy="Forbid", startingDeadlineSeconds=30))  # fmt: skip
    first = minute_after(cron.created(obj))
    clock.set(first)
    wait_for("the first run", lambda: run_names(kube_api, ns, name))
    second = minute_after(first)
    clock.set(second)
    cron.wait_ticks(operator, ns, name)
    assert run_names(kube_api, ns, name) == [run_at(name, first)]
    ready = condition(status(kube_api, ns, name), "Ready")
    assert ready["reason"] == "Waiting" and "Forbid" in ready["message"], ready
    # past the starting deadline the held-back run is counted as missed, never started
    clock.set(second + timedelta(seconds=31))
    wait_for("the missed run counted", lambda: status(kube_api, ns, name).get("missedRuns") == 1)
    assert status(kube_api, ns, name)["lastMissedTime"] == format_time(second)
    assert "MissedSchedule" in cron.events(kube_api, ns, name)
    # once the active run is over, the next time starts again
    kube_api.kubectl("patch", "tw", run_at(name, first), "-n", ns, "--type=merge",
                     "-p", '{"spec":{"shutdown":"Terminate"}}')  # fmt: skip
    wait_final(kube_api, ns, run_at(name, first))
    third = minute_after(second)
    clock.set(third)
    wait_for("the third run", lambda: len(run_names(kube_api, ns, name)) == 2)
    assert run_names(kube_api, ns, name) == [run_at(name, first), run_at(name, third)]


def test_replace_cancels_the_active_run(kube_api, operator, ns, clock) -> None:
    name, obj = make(kube_api, ns, cron.ctw("replace", LONG, concurrencyPolicy="Replace"))
    first = minute_after(cron.created(obj))
    clock.set(first)
    old = run_at(name, first)
    wait_for("the first run running", lambda: run_names(kube_api, ns, name) and
             kube_api.kubectl_json("get", "tw", old, "-n", ns).get("status", {}).get(
                 "phase") == "Running")  # fmt: skip
    second = minute_after(first)
    clock.set(second)
    wait_for("the second run", lambda: len(run_names(kube_api, ns, name)) == 2)
    replaced = wait_final(kube_api, ns, old, timeout=30)
    assert replaced["phase"] == "Cancelled"
    assert kube_api.kubectl_json("get", "tw", old, "-n", ns)["spec"]["shutdown"] == "Terminate"
    assert "RunReplaced" in cron.events(kube_api, ns, name)
    new = kube_api.kubectl_json("get", "tw", run_at(name, second), "-n", ns)
    assert new.get("status", {}).get("phase") not in ("Cancelled", "Failed", "Succeeded")
    active = wait_for("one active run", lambda: status(kube_api, ns, name).get("activeCount") == 1
                      and status(kube_api, ns, name)["active"])  # fmt: skip
    assert [a["name"] for a in active] == [run_at(name, second)]


def test_suspend_stops_new_runs_and_resume_starts_only_the_latest(
    kube_api, operator, ns, clock
) -> None:
    name, obj = make(kube_api, ns, cron.ctw("suspended", ADD, suspend=True))
    ready = condition(status(kube_api, ns, name), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert "nextScheduleTime" not in status(kube_api, ns, name)
    first = minute_after(cron.created(obj))
    clock.set(minute_after(first, 2) + timedelta(seconds=5))  # three scheduled times pass
    cron.wait_ticks(operator, ns, name)
    assert run_names(kube_api, ns, name) == [], "a suspended schedule started a run"
    kube_api.kubectl("patch", "ctw", name, "-n", ns, "--type=merge",
                     "-p", '{"spec":{"suspend":false}}')  # fmt: skip
    wait_for("a run after resuming", lambda: run_names(kube_api, ns, name))
    cron.wait_ticks(operator, ns, name)
    # CronJob's rule: the times that passed are counted, only the latest starts
    assert run_names(kube_api, ns, name) == [run_at(name, minute_after(first, 2))]
    assert status(kube_api, ns, name)["missedRuns"] == 2


def test_history_limits_delete_old_runs(kube_api, operator, ns, clock) -> None:
    name, obj = make(kube_api, ns, cron.ctw(
        "history", ADD, successfulRunsHistoryLimit=2, failedRunsHistoryLimit=1))  # fmt: skip
    times = [minute_after(cron.created(obj), i) for i in range(1, 6)]

    def tick_to(moment) -> None:
        clock.set(moment)
        wait_for(f"the run at {moment}", lambda: run_at(name, moment) in run_names(
            kube_api, ns, name))  # fmt: skip
        wait_final(kube_api, ns, run_at(name, moment))

    for moment in times[:3]:
        tick_to(moment)
    fail = {"task": "fail", "args": ["on purpose"]}
    # a JSON patch: a merge patch would keep the old node's chain beside the new task
    failing = [{"op": "replace", "path": "/spec/workflowTemplate/spec/workflow", "value": fail}]
    kube_api.kubectl("patch", "ctw", name, "-n", ns, "--type=json", "-p", json.dumps(failing))
    for moment in times[3:]:
        tick_to(moment)
    expected = [run_at(name, times[1]), run_at(name, times[2]), run_at(name, times[4])]
    wait_for("the history limits", lambda: run_names(kube_api, ns, name) == expected)
    assert cron.events(kube_api, ns, name).count("RunDeleted") == 2
    phases = [r["status"]["phase"] for r in cron.runs(kube_api, ns, name)]
    assert phases == ["Succeeded", "Succeeded", "Failed"]


def test_operator_killed_around_a_scheduled_time_creates_the_run_once(
    kube_api, operator: OperatorProcess, ns, clock, redis_server: RedisServer
) -> None:
    name, obj = make(kube_api, ns, cron.ctw("restart", {"task": "add", "args": [1, 1]}))
    first = minute_after(cron.created(obj))
    # killed a second before the time, back after it: the run starts once, late
    clock.set(first - timedelta(seconds=1))
    cron.wait_ticks(operator, ns, name, 1)
    operator.kill()
    clock.set(first + timedelta(seconds=1))
    operator.start()
    wait_for("the run after the restart", lambda: run_names(kube_api, ns, name))
    # killed right after the create: the status update is lost with it (patched away
    # here, as if it had never been written), and the restarted operator meets the run
    second = minute_after(first)
    clock.set(second)
    wait_for("the second run", lambda: len(run_names(kube_api, ns, name)) == 2)
    operator.kill()
    uid = kube_api.kubectl_json("get", "tw", run_at(name, second), "-n", ns)["metadata"]["uid"]
    lost = {"status": {"lastScheduleTime": format_time(first)}}
    kube_api.kubectl("patch", "ctw", name, "-n", ns, "--subresource=status", "--type=merge",
                     "-p", json.dumps(lost))  # fmt: skip
    operator.start()
    wait_for(
        "lastScheduleTime back at the second time",
        lambda: status(kube_api, ns, name).get("lastScheduleTime") == format_time(second),
    )
    cron.wait_ticks(operator, ns, name)
    assert run_names(kube_api, ns, name) == [run_at(name, first), run_at(name, second)]
    assert kube_api.kubectl_json("get", "tw", run_at(name, second), "-n", ns)["metadata"][
        "uid"] == uid, "the run was made again"  # fmt: skip
    # (Events are no evidence here: kopf posts them in the background, and a SIGKILL
    # loses those not posted yet.) Each run's task ran once:
    redis = redis_server.client()
    for run in run_names(kube_api, ns, name):
        done = wait_final(kube_api, ns, run)
        assert done["phase"] == "Succeeded"
        assert [int(redis.get(keys.DELIVERIES + n["taskId"]) or 0) for n in done["nodes"]] == [1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"schedule": "61 * * * *"}, "out of range"),
     ({"schedule": "every minute"}, "has 5 fields"),
     ({"timeZone": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'")],
)  # fmt: skip
def test_a_bad_schedule_is_a_condition_not_a_crash(
    kube_api, operator, ns, clock, spec, message
) -> None:
    manifest = cron.ctw("invalid", ADD)
    manifest["spec"].update(spec)
    name, obj = make(kube_api, ns, manifest)
    ready = condition(status(kube_api, ns, name), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ValidationFailed")
    assert message in ready["message"]
    assert cron.events(kube_api, ns, name) == ["ValidationFailed"]
    clock.set(minute_after(cron.created(obj)))
    cron.wait_ticks(operator, ns, name)
    assert run_names(kube_api, ns, name) == []
    assert cron.events(kube_api, ns, name) == ["ValidationFailed"], "posted on every check"
    assert operator.process is not None and operator.process.poll() is None
    # fixed: it schedules
    fixed = {"spec": {"schedule": "* * * * *", "timeZone": "UTC"}}
    kube_api.kubectl("patch", "ctw", name, "-n", ns, "--type=merge", "-p", json.dumps(fixed))
    wait_for("Ready again", lambda: condition(status(kube_api, ns, name), "Ready")["status"]
             == "True")  # fmt: skip


def test_schedule_examples(kube_api, operator, ns, clock) -> None:
    kube_api.kubectl("apply", "-f", str(SCHEDULE_EXAMPLES), "-n", ns)
    for name, result in SCHEDULE_EXPECTED.items():
        obj = wait_for(f"{name} has a status", lambda n=name: get_ctw(kube_api, ns, n).get(
            "status") and get_ctw(kube_api, ns, n))  # fmt: skip
        spec = obj["spec"]
        due = parse_schedule(spec["schedule"], spec["timeZone"], cron.created(obj)).next_after(
            cron.created(obj))  # fmt: skip
        clock.set(due)
        wait_for(f"{name}'s first run", lambda n=name: run_names(kube_api, ns, n))
        (run,) = run_names(kube_api, ns, name)
        done = wait_final(kube_api, ns, run)
        assert (done["phase"], done.get("result")) == ("Succeeded", result), name
