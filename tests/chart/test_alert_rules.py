"""The chart's alert rules, rendered, checked and unit-tested with promtool.

Every alert has a case where it fires and one where it stays silent. The worker-down
replacement (CeleryQueueNotConsumed) is run against the exporter's real behaviour with
the chart's own timings, read from values.yaml: a killed worker's task counters stop at
once, its `celery_worker_up` and `celery_worker_tasks_active` go to 0 at
`exporter.workerTimeout` and its series vanish at `exporter.purgeOfflineWorkerMetrics`
(celery-exporter 0.11.2's forget_worker / purge_worker_metrics). Change those values and
these cases check the rule against the new ones.

promtool comes from Debian's `prometheus` package, installed by
scripts/install-test-deps.sh; without it these tests fail and say so.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from celery_harder import metric_names as m
from celery_harder_dev.dashboards import dashboard_uids

from .alertlib import RUNBOOK, api_job, chart_values, render_rules, rules_of
from .chartlib import NAMESPACE, RELEASE, VALUES_DIR, render_case

PROMTOOL = shutil.which("promtool")
NS = NAMESPACE
VALUES = chart_values()
RULES_VALUES = VALUES["monitoring"]["rules"]
WORKER_TIMEOUT = int(VALUES["exporter"]["workerTimeout"])
PURGE = int(VALUES["exporter"]["purgeOfflineWorkerMetrics"])
# Rules are evaluated at the scrape interval (kube-prometheus-stack's default
# evaluationInterval is 30 s too); every series below has one sample per scrape.
STEP = VALUES["monitoring"]["interval"]
# A worker pod's start from zero after KEDA activates the ScaledObject: KEDA's poll, the
# Deployment's 0 -> 1 and the pod's start on a node with the image present. Seen in
# 20-40 s on the local node (tests/cluster); 90 s is a slow one.
POD_START = 90

ALERTS = {
    "CeleryTaskHighFailRate",
    "CeleryBacklogAtMaxReplicas",
    "CeleryQueueNotConsumed",
    "CeleryHarderWorkflowsFailing",
    "CeleryHarderWorkflowsOverdue",
    "CeleryHarderOperatorNotSyncing",
    "CeleryHarderApiErrors",
    "CeleryHarderRedisDown",
    "CeleryHarderApiSlow",
}


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match.group(1)) * units[match.group(2)]


STEP_S = seconds(STEP)


def series(n: int, value: Callable[[int], float | str | None]) -> str:
    """promtool's `values` for samples 0..n-1, one per STEP: a number, None (no sample) or
    "stale" (the target stopped exposing the series)."""
    out = []
    for i in range(n):
        v = value(i)
        out.append("_" if v is None else str(v))
    return " ".join(out)


def steps(duration_s: float) -> int:
    return math.ceil(duration_s / STEP_S)


def pod(pool: str = "default", n: int = 0) -> str:
    """A worker pod's name, the `hostname` label celery-exporter gives it."""
    deployment = f"{RELEASE}-worker" if pool == "default" else f"{RELEASE}-worker-{pool}"
    return f"{deployment}-7d9f8b6c4-x{n:04d}"


def _promtool(*args: str) -> str:
    if PROMTOOL is None:
        pytest.fail("promtool not installed: run scripts/install-test-deps.sh")
    proc = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return render_rules()


@pytest.fixture(scope="module")
def rules_file(spec, tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def annotations(spec: dict[str, Any], alert: str, description: str) -> dict[str, str]:
    """The alert's expected annotations: its static ones from the rule, and `description`."""
    rule = next(r for r in rules_of(spec) if r["alert"] == alert)
    static = {k: v for k, v in rule["annotations"].items() if k != "description"}
    return {**static, "description": description}


def run_cases(rules_file, groups: list[dict[str, Any]], tmp_path) -> None:
    for group in groups:
        group.setdefault("interval", STEP)
    tests = {"rule_files": [str(rules_file)], "evaluation_interval": STEP, "tests": groups}
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    out = _promtool("test", "rules", str(path))
    assert "SUCCESS" in out, out


def fired(alert: str, at: str, labels: dict[str, str], annotations_: dict[str, str]):
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations_}],
    }


def silent(alert: str, at: str):
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


# --- promtool check -------------------------------------------------------------------


def test_rendered_rules_pass_promtool_check(rules_file, spec):
    assert {r["alert"] for r in rules_of(spec)} == ALERTS
    out = _promtool("check", "rules", str(rules_file))
    assert f"SUCCESS: {len(rules_of(spec))} rules found" in out, out


def test_rules_over_pools_and_switches_pass_promtool_check(tmp_path):
    """Every pool gets its backlog and not-consumed rule; the switches take rules away."""
    spec = render_rules(values_files=(VALUES_DIR / "pools.yaml",))
    names = [(r["alert"], r["labels"].get("pool")) for r in rules_of(spec)]
    for pool in ("default", "cpu", "io"):
        assert ("CeleryBacklogAtMaxReplicas", pool) in names
        assert ("CeleryQueueNotConsumed", pool) in names
    path = tmp_path / "pools.yaml"
    path.write_text(yaml.safe_dump(spec))
    _promtool("check", "rules", str(path))
    backlog = {
        r["labels"]["pool"]: r["expr"]
        for r in rules_of(spec)
        if r["alert"] == "CeleryBacklogAtMaxReplicas"
    }
    assert ">= 6" in backlog["cpu"] and 'queue=~"cpu|reports"' in backlog["cpu"]
    assert ">= 2" in backlog["io"]  # KEDA off: its fixed replicaCount is the maximum
    off = render_rules(("monitoring.rules.workerDown=false", "operator.enabled=false"))
    assert {r["alert"] for r in rules_of(off)} == ALERTS - {
        "CeleryQueueNotConsumed",
        "CeleryHarderOperatorNotSyncing",
    }


def test_thresholds_follow_values():
    spec = render_rules(
        (
            "monitoring.rules.failureRatePercent=20",
            "monitoring.rules.queueLength=1000",
            "monitoring.rules.api5xxPercent=2",
            "monitoring.rules.apiLatencyP99Seconds=2",
            "monitoring.rules.operatorSyncAgeSeconds=900",
            "monitoring.rules.workflowFailureRatePercent=25",
            "monitoring.rules.workflowsOverdue=3",
            "monitoring.rules.notConsumedFor=7m",
            "monitoring.rules.backlogFor=30m",
            "monitoring.rules.redisDownFor=7m",
            "monitoring.rules.runbookBaseUrl=https://wiki.example/runbook",
            "monitoring.grafana.url=https://grafana.example/",
        )
    )
    rules = {r["alert"]: r for r in rules_of(spec)}
    expr = {a: " ".join(r["expr"].split()) for a, r in rules.items()}
    assert expr["CeleryTaskHighFailRate"].endswith("> 20")
    assert "> 1000" in expr["CeleryBacklogAtMaxReplicas"]
    assert expr["CeleryHarderApiErrors"].endswith("> 2")
    assert expr["CeleryHarderApiSlow"].endswith("> 2")
    assert "> 900" in expr["CeleryHarderOperatorNotSyncing"]
    assert expr["CeleryHarderWorkflowsFailing"].endswith("> 25")
    assert expr["CeleryHarderWorkflowsOverdue"].endswith("> 3")
    assert rules["CeleryQueueNotConsumed"]["for"] == "7m"
    assert rules["CeleryBacklogAtMaxReplicas"]["for"] == "30m"
    assert rules["CeleryHarderRedisDown"]["for"] == "7m"
    for rule in rules.values():
        assert rule["annotations"]["runbook_url"].startswith("https://wiki.example/runbook#")
        assert rule["annotations"]["dashboard_url"].startswith("https://grafana.example/d/")


# --- links ---------------------------------------------------------------------------


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            text = match.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_every_alert_links_a_runbook_section_and_a_dashboard(spec):
    anchors = github_anchors(RUNBOOK.read_text())
    uids = dashboard_uids()
    base = RULES_VALUES["runbookBaseUrl"]
    grafana = VALUES["monitoring"]["grafana"]["url"]
    for rule in rules_of(spec):
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        url, _, anchor = notes["runbook_url"].partition("#")
        assert url == base and anchor in anchors, (rule["alert"], anchor, sorted(anchors))
        assert anchor == rule["alert"].lower(), rule["alert"]
        match = re.fullmatch(
            re.escape(grafana) + r"/d/([\w-]+)\?var-namespace=(.+)", notes["dashboard_url"]
        )
        assert match, notes["dashboard_url"]
        assert match.group(1) in uids and match.group(2) == NS, notes["dashboard_url"]


def test_rules_use_registered_metric_names(spec):
    """Every metric a rule selects is one of metric_names' series (or their histogram's)."""
    known = set()
    for metric in (
        *m.OWN_METRICS,
        m.HTTP_REQUESTS,
        m.HTTP_REQUEST_DURATION,
        m.EXPORTER_TASK_FAILED,
        m.EXPORTER_TASK_SUCCEEDED,
        m.EXPORTER_TASK_RECEIVED,
        m.EXPORTER_TASK_STARTED,
        m.EXPORTER_WORKER_UP,
        m.EXPORTER_WORKER_TASKS_ACTIVE,
    ):
        known.add(metric.series)
        if metric.kind == "histogram":
            known |= {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}
    for rule in rules_of(spec):
        used = set(re.findall(r"([a-z_:][a-z0-9_:]*)\{", rule["expr"]))
        assert used and used <= known, (rule["alert"], used - known)
    assert "celery_queue_length" not in str(spec)  # priority-0 list only: celery-exporter#272


# --- promtool test: one firing and one silent case per alert ----------------------------


def test_task_failure_rate(spec, rules_file, tmp_path):
    lab = f'namespace="{NS}",queue_name="celery",hostname="w1"'

    def desc(task):
        return f"More than 5% of {task} tasks failed in the last 10 minutes (queue celery)."

    assert RULES_VALUES["failureRatePercent"] == 5
    n = 41
    group = {
        "input_series": [
            # add: 1 failure per 9 successes = 10 % -> fires
            {
                "series": f'{m.EXPORTER_TASK_FAILED.series}{{{lab},name="add",exception="E"}}',
                "values": "0+1x40",
            },
            {
                "series": f'{m.EXPORTER_TASK_SUCCEEDED.series}{{{lab},name="add"}}',
                "values": "0+9x40",
            },
            # mul: 1 failure per 99 successes = 1 % -> silent
            {
                "series": f'{m.EXPORTER_TASK_FAILED.series}{{{lab},name="mul",exception="E"}}',
                "values": "0+1x40",
            },
            {
                "series": f'{m.EXPORTER_TASK_SUCCEEDED.series}{{{lab},name="mul"}}',
                "values": "0+99x40",
            },
            # fail: only failures, no succeeded series at all -> 100 %, fires
            {
                "series": f'{m.EXPORTER_TASK_FAILED.series}{{{lab},name="fail",exception="E"}}',
                "values": "0+2x40",
            },
            # another namespace's tasks are not ours
            {
                "series": 'celery_task_failed_total{namespace="other",queue_name="celery",name="add",hostname="w9",exception="E"}',  # noqa: E501
                "values": series(n, lambda i: 5 * i),
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "CeleryTaskHighFailRate",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": NS,
                            "queue_name": "celery",
                            "name": task,
                        },
                        "exp_annotations": annotations(spec, "CeleryTaskHighFailRate", desc(task)),
                    }
                    for task in ("add", "fail")
                ],
            },
        ],
    }
    quiet = {
        "input_series": [
            {
                "series": f'{m.EXPORTER_TASK_SUCCEEDED.series}{{{lab},name="add"}}',
                "values": "0+9x40",
            },
            {
                "series": f'{m.EXPORTER_TASK_FAILED.series}{{{lab},name="add",exception=""}}',
                "values": "0x40",
            },
        ],
        "alert_rule_test": [silent("CeleryTaskHighFailRate", "15m")],
    }
    run_cases(rules_file, [group, quiet], tmp_path)


def _waiting(n: int, value: Callable[[int], float | str | None], queue: str = "celery"):
    """The API's queue gauge, from two API replicas (the rules take their max)."""
    return [
        {
            "series": f'{m.QUEUE_WAITING.series}{{namespace="{NS}",job="{api_job()}",'
            f'instance="{ip}:8000",queue="{queue}"}}',
            "values": series(n, value),
        }
        for ip in ("10.0.0.1", "10.0.0.2")
    ]


def _worker(
    n: int,
    host: str,
    up: Callable[[int], Any],
    active: Callable[[int], Any],
    received: Callable[[int], Any],
    queue: str = "celery",
):
    lab = f'namespace="{NS}",hostname="{host}"'
    task = f'{lab},name="add",queue_name="{queue}"'
    return [
        {"series": f"{m.EXPORTER_WORKER_UP.series}{{{lab}}}", "values": series(n, up)},
        {
            "series": f"{m.EXPORTER_WORKER_TASKS_ACTIVE.series}{{{lab}}}",
            "values": series(n, active),
        },
        {"series": f"{m.EXPORTER_TASK_RECEIVED.series}{{{task}}}", "values": series(n, received)},
        {"series": f"{m.EXPORTER_TASK_STARTED.series}{{{task}}}", "values": series(n, received)},
    ]


def test_backlog_growing_at_max_replicas(spec, rules_file, tmp_path):
    top = int(VALUES["keda"]["maxReplicaCount"])
    threshold = int(RULES_VALUES["queueLength"])
    hold = seconds(RULES_VALUES["backlogFor"])
    n = steps(hold + 40 * 60)
    at = f"{(n - 1) * STEP_S}s"

    def growing(i):
        return threshold + 10 + 4 * i

    def workers(count):
        return [
            s
            for w in range(count)
            for s in _worker(n, pod("default", w), lambda i: 1, lambda i: 2, lambda i: 10 * i)
        ]

    def group(count, waiting):
        return {"input_series": [*_waiting(n, waiting), *workers(count)]}

    value = growing(n - 1)
    desc = (
        f"Pool default runs all of its {top} replicas and {value} messages wait in its "
        f"queues (celery), more than {threshold} and more than 10 minutes ago."
    )
    cases = [
        {
            **group(top, growing),
            "alert_rule_test": [
                fired(
                    "CeleryBacklogAtMaxReplicas",
                    at,
                    {"severity": "warning", "namespace": NS, "pool": "default"},
                    annotations(spec, "CeleryBacklogAtMaxReplicas", desc),
                ),
                # above the threshold and growing, but for less than backlogFor
                silent("CeleryBacklogAtMaxReplicas", f"{hold - 60}s"),
            ],
        },
        # one replica short of the maximum: KEDA can still add one
        {**group(top - 1, growing), "alert_rule_test": [silent("CeleryBacklogAtMaxReplicas", at)]},
        # at the maximum, above the threshold, but shrinking: the workers keep up
        {
            **group(top, lambda i: threshold + 10 + 4 * n - 4 * i),
            "alert_rule_test": [silent("CeleryBacklogAtMaxReplicas", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def _not_consumed(spec, value, queue="celery", pool="default"):
    window = RULES_VALUES["notConsumedWindow"]
    desc = (
        f"{value} messages wait in queue {queue} (pool {pool}) and no worker has received "
        f"or started a task from it for {window}, nor is busy with one."
    )
    return (
        {"severity": "critical", "namespace": NS, "queue": queue, "pool": pool},
        annotations(spec, "CeleryQueueNotConsumed", desc),
    )


def test_worker_killed_with_work_queued_fires_before_the_exporter_purges_it(
    spec, rules_file, tmp_path
):
    """A worker consumes, then dies (SIGKILL, node lost: no worker-offline event) with 40
    messages still waiting. The exporter behaves as 0.11.2 does with the chart's timings."""
    window = seconds(RULES_VALUES["notConsumedWindow"])
    hold = seconds(RULES_VALUES["notConsumedFor"])
    killed = steps(20 * 60)  # the sample of the kill: the last one with a new task
    gone = killed + steps(WORKER_TIMEOUT)  # forget_worker: up and active set to 0
    purged = killed + steps(PURGE)  # purge_worker_metrics: every series of the worker removed
    n = purged + steps(10 * 60)

    def alive_until(i, before, between, after="stale"):
        if i < gone:
            return before(i)
        if i < purged:
            return between
        return after if i == purged else None

    dead = _worker(
        n,
        pod("default", 0),
        up=lambda i: alive_until(i, lambda i: 1, 0),
        active=lambda i: alive_until(i, lambda i: 2, 0),
        received=lambda i: alive_until(i, lambda i: 10 * min(i, killed), 10 * killed),
    )
    # a busy worker of another pool, on another queue, hides nothing of the default pool
    other = _worker(n, pod("cpu", 1), lambda i: 1, lambda i: 4, lambda i: 3 * i, queue="cpu")
    labels, notes = _not_consumed(spec, 40)
    before_purge = f"{(purged - 1) * STEP_S}s"
    assert (purged - 1) * STEP_S < killed * STEP_S + PURGE
    case = {
        "input_series": [*_waiting(n, lambda i: 40), *dead, *other],
        "alert_rule_test": [
            silent("CeleryQueueNotConsumed", f"{(killed - 1) * STEP_S}s"),  # consuming
            silent("CeleryQueueNotConsumed", f"{(killed + steps(60)) * STEP_S}s"),  # just died
            fired("CeleryQueueNotConsumed", before_purge, labels, notes),
            # and it keeps firing once the exporter has dropped the dead worker's series
            fired("CeleryQueueNotConsumed", f"{(n - 1) * STEP_S}s", labels, notes),
        ],
    }
    run_cases(rules_file, [case], tmp_path)
    # the arithmetic the rule's comment and values.yaml promise, with the chart's values
    assert max(window, WORKER_TIMEOUT) + hold + 2 * STEP_S < PURGE


def test_zero_replicas(spec, rules_file, tmp_path):
    """Scale-to-zero: an idle pool with an empty queue is silent; a queue filling while no
    worker starts fires; KEDA starting a worker from zero within a normal delay is silent."""
    hold = seconds(RULES_VALUES["notConsumedFor"])
    n = steps(40 * 60)
    filled = steps(10 * 60)  # 30 messages arrive at 10 m
    started = filled + steps(int(VALUES["keda"]["pollingInterval"]) + POD_START)
    assert (started - filled) * STEP_S < hold
    late = [f"{(filled + steps(hold) + k) * STEP_S}s" for k in (2, 10, 40)]

    def draining(i):
        return 30 if i < started else max(0, 30 - 4 * (i - started))

    worker = _worker(
        n,
        pod("default", 0),
        up=lambda i: None if i < started else 1,
        active=lambda i: None if i < started else (2 if draining(i) else 0),
        received=lambda i: None if i < started else 4 * (i - started) + 2,
    )
    labels, notes = _not_consumed(spec, 30)
    cases = [
        # idle at zero replicas: the queue gauge says 0 and no worker has any series
        {
            "input_series": _waiting(n, lambda i: 0),
            "alert_rule_test": [silent("CeleryQueueNotConsumed", at) for at in late],
        },
        # the queue fills and no worker ever comes (KEDA down, pods unschedulable)
        {
            "input_series": _waiting(n, lambda i: 0 if i < filled else 30),
            "alert_rule_test": [fired("CeleryQueueNotConsumed", late[0], labels, notes)],
        },
        # KEDA starts one: pending while the pod starts, never firing
        {
            "input_series": [*_waiting(n, lambda i: 0 if i < filled else draining(i)), *worker],
            "alert_rule_test": [silent("CeleryQueueNotConsumed", at) for at in late],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def test_busy_worker_on_long_tasks_is_consuming(rules_file, tmp_path):
    """Work waits while the only worker runs long tasks and takes nothing new: not an alert."""
    n = steps(40 * 60)
    worker = _worker(n, pod("default", 0), lambda i: 1, lambda i: 2, lambda i: min(i, 3) * 2)
    case = {
        "input_series": [*_waiting(n, lambda i: 5), *worker],
        "alert_rule_test": [silent("CeleryQueueNotConsumed", f"{(n - 1) * STEP_S}s")],
    }
    run_cases(rules_file, [case], tmp_path)


def _finished(n, per_step: dict[str, int]):
    return [
        {
            "series": f'{m.WORKFLOWS_FINISHED.series}{{namespace="{NS}",job="{job}",'
            f'outcome="{o}"}}',
            "values": series(n, lambda i, k=k: k * i),
        }
        for o, k in per_step.items()
        for job in (api_job(), f"{RELEASE}-operator")
    ]


def test_workflows_failing(spec, rules_file, tmp_path):
    assert RULES_VALUES["workflowFailureRatePercent"] == 10
    n = steps(40 * 60)
    at = f"{(n - 1) * STEP_S}s"
    desc = (
        "20% of the workflows that finished in the last 15 minutes failed or timed out "
        "(threshold 10%)."
    )
    cases = [
        {
            "input_series": _finished(n, {"succeeded": 8, "failed": 1, "timed_out": 1}),
            "alert_rule_test": [
                fired(
                    "CeleryHarderWorkflowsFailing",
                    at,
                    {"severity": "warning", "namespace": NS},
                    annotations(spec, "CeleryHarderWorkflowsFailing", desc),
                )
            ],
        },
        # 5 % failed, and many cancelled (cancelling is not failing)
        {
            "input_series": _finished(n, {"succeeded": 19, "failed": 1, "cancelled": 20}),
            "alert_rule_test": [silent("CeleryHarderWorkflowsFailing", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def test_workflows_overdue(spec, rules_file, tmp_path):
    hold = seconds(RULES_VALUES["workflowsOverdueFor"])
    n = steps(hold + 20 * 60)
    at = f"{(n - 1) * STEP_S}s"

    def overdue(value):
        return [
            {
                "series": f'{m.WORKFLOWS_OVERDUE.series}{{namespace="{NS}",job="{api_job()}",'
                f'instance="{ip}:8000"}}',
                "values": series(n, value),
            }
            for ip in ("10.0.0.1", "10.0.0.2")
        ]

    hold_text = RULES_VALUES["workflowsOverdueFor"]
    desc = f"2 workflows are unfinished past their deadline for {hold_text}."
    cases = [
        {
            "input_series": overdue(lambda i: 2),
            "alert_rule_test": [
                fired(
                    "CeleryHarderWorkflowsOverdue",
                    at,
                    {"severity": "warning", "namespace": NS},
                    annotations(spec, "CeleryHarderWorkflowsOverdue", desc),
                )
            ],
        },
        # one overdue for a moment (the reaper's next pass times it out)
        {
            "input_series": overdue(lambda i: 1 if i == 5 else 0),
            "alert_rule_test": [silent("CeleryHarderWorkflowsOverdue", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def test_operator_not_syncing(spec, rules_file, tmp_path):
    age = int(RULES_VALUES["operatorSyncAgeSeconds"])
    n = steps(age + 20 * 60)
    at_s = (n - 1) * STEP_S
    at = f"{at_s}s"
    lab = f'namespace="{NS}",job="{RELEASE}-operator"'

    def operator(last_sync, running, crons=None):
        """The operator's gauges: a last sync, Running TaskWorkflows, CronTaskWorkflows by
        phase (the operator serves every kind and phase, zeros included)."""
        crons = {"Scheduled": 0, "Suspended": 0, "ValidationFailed": 0, **(crons or {})}
        resources = f"{m.OPERATOR_RESOURCES.series}{{{lab}"
        return [
            {"series": f"{m.OPERATOR_LAST_SYNC.series}{{{lab}}}", "values": series(n, last_sync)},
            {
                "series": f'{resources},kind="TaskWorkflow",phase="Running"}}',
                "values": series(n, lambda i: running),
            },
            {
                "series": f'{resources},kind="TaskWorkflow",phase="Succeeded"}}',
                "values": series(n, lambda i: 7),
            },
            *(
                {
                    "series": f'{resources},kind="CronTaskWorkflow",phase="{phase}"}}',
                    "values": series(n, lambda i, k=k: k),
                }
                for phase, k in crons.items()
            ),
        ]

    stuck_at = 60

    def stuck(i):
        return min(i * STEP_S, stuck_at)

    minutes, secs = divmod(at_s - stuck_at, 60)
    desc = (
        f"The operator last synced {minutes}m {secs}s ago while it has work (Running "
        f"TaskWorkflows or CronTaskWorkflows to evaluate; threshold {age} s)."
    )
    labels = {"severity": "critical", "namespace": NS}
    notes = annotations(spec, "CeleryHarderOperatorNotSyncing", desc)
    cases = [
        # stuck: the last sync at 60 s, two resources Running
        {
            "input_series": operator(stuck, 2),
            "alert_rule_test": [fired("CeleryHarderOperatorNotSyncing", at, labels, notes)],
        },
        # stuck with nothing Running but a (suspended) CronTaskWorkflow, evaluated every 5 s
        {
            "input_series": operator(stuck, 0, {"Suspended": 1}),
            "alert_rule_test": [fired("CeleryHarderOperatorNotSyncing", at, labels, notes)],
        },
        # idle: nothing Running, only a cron whose schedule does not parse (never evaluated)
        {
            "input_series": operator(stuck, 0, {"ValidationFailed": 1}),
            "alert_rule_test": [silent("CeleryHarderOperatorNotSyncing", at)],
        },
        # busy and syncing
        {
            "input_series": operator(lambda i: i * STEP_S, 2, {"Scheduled": 3}),
            "alert_rule_test": [silent("CeleryHarderOperatorNotSyncing", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def _requests(n, per_step: dict[str, int], job: str | None = None):
    job = job or api_job()
    return [
        {
            "series": f'{m.HTTP_REQUESTS.series}{{namespace="{NS}",job="{job}",handler="/add",'
            f'method="POST",status="{status}"}}',
            "values": series(n, lambda i, k=k: k * i),
        }
        for status, k in per_step.items()
    ]


def test_api_errors(spec, rules_file, tmp_path):
    assert RULES_VALUES["api5xxPercent"] == 5
    n = steps(30 * 60)
    at = f"{(n - 1) * STEP_S}s"
    desc = "10.0% of API requests answered 5xx over 5 minutes (threshold 5%)."
    cases = [
        {
            "input_series": _requests(n, {"2xx": 80, "4xx": 10, "5xx": 10}),
            "alert_rule_test": [
                fired(
                    "CeleryHarderApiErrors",
                    at,
                    {"severity": "critical", "namespace": NS},
                    annotations(spec, "CeleryHarderApiErrors", desc),
                )
            ],
        },
        # 1 % 5xx; another job's errors in the namespace are not the API's
        {
            "input_series": [
                *_requests(n, {"2xx": 99, "5xx": 1}),
                *_requests(n, {"5xx": 50}, job="someone-else"),
            ],
            "alert_rule_test": [silent("CeleryHarderApiErrors", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def test_redis_down(spec, rules_file, tmp_path):
    """Every API replica at 0 for `for` fires; a shorter outage or one replica at 0 does not."""
    hold_text = next(r for r in rules_of(spec) if r["alert"] == "CeleryHarderRedisDown")["for"]
    hold = seconds(hold_text)
    down = steps(5 * 60)  # the first scrape without Redis
    n = down + steps(hold) + steps(10 * 60)
    at = f"{(down + steps(hold)) * STEP_S}s"

    def replicas(*ups: Callable[[int], int]):
        return [
            {
                "series": f'{m.REDIS_UP.series}{{namespace="{NS}",job="{api_job()}",'
                f'instance="10.0.0.{k}:8000"}}',
                "values": series(n, up),
            }
            for k, up in enumerate(ups, 1)
        ]

    def outage(i):
        return 0 if i >= down else 1

    def blip(i):  # down for one scrape less than `for`, then back
        return 0 if down <= i < down + steps(hold) - 1 else 1

    desc = (
        f"No API replica has reached Redis for {hold_text}: no task can be sent, run or read "
        "until it answers again."
    )
    labels = {"severity": "critical", "namespace": NS}
    notes = annotations(spec, "CeleryHarderRedisDown", desc)
    cases = [
        {
            "input_series": replicas(outage, outage),
            "alert_rule_test": [
                silent("CeleryHarderRedisDown", f"{(down + steps(hold) - 1) * STEP_S}s"),
                fired("CeleryHarderRedisDown", at, labels, notes),
                fired("CeleryHarderRedisDown", f"{(n - 1) * STEP_S}s", labels, notes),
            ],
        },
        {
            "input_series": replicas(blip, blip),
            "alert_rule_test": [silent("CeleryHarderRedisDown", at)],
        },
        # one replica cannot reach Redis, the other reads it: that pod's network
        {
            "input_series": replicas(outage, lambda i: 1),
            "alert_rule_test": [silent("CeleryHarderRedisDown", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def test_api_slow(spec, rules_file, tmp_path):
    assert RULES_VALUES["apiLatencyP99Seconds"] == 1
    n = steps(30 * 60)
    at = f"{(n - 1) * STEP_S}s"

    def buckets(handler, per_le: dict[str, int]):
        total = 0
        out = []
        for le, k in per_le.items():
            total += k
            out.append(
                {
                    "series": f'{m.HTTP_REQUEST_DURATION.name}_bucket{{namespace="{NS}",'
                    f'job="{api_job()}",handler="{handler}",method="GET",le="{le}"}}',
                    "values": series(n, lambda i, t=total: t * i),
                }
            )
        return out

    # every request between 1 s and 2.5 s: p99 = 1 + 1.5 * 0.99
    desc = "The API answered 1% of its requests in more than 2.485s over 5 minutes (threshold 1 s)."
    cases = [
        {
            "input_series": buckets(
                "/result/{task_id}", {"0.1": 0, "0.5": 0, "1.0": 0, "2.5": 100, "+Inf": 0}
            ),
            "alert_rule_test": [
                fired(
                    "CeleryHarderApiSlow",
                    at,
                    {"severity": "warning", "namespace": NS},
                    annotations(spec, "CeleryHarderApiSlow", desc),
                )
            ],
        },
        # fast requests; the SSE stream, open for minutes, is not counted
        {
            "input_series": [
                *buckets(
                    "/result/{task_id}", {"0.1": 100, "0.5": 0, "1.0": 0, "2.5": 0, "+Inf": 0}
                ),
                *buckets(
                    "/workflows/{workflow_id}/events",
                    {"0.1": 0, "0.5": 0, "1.0": 0, "2.5": 0, "+Inf": 50},
                ),
            ],
            "alert_rule_test": [silent("CeleryHarderApiSlow", at)],
        },
    ]
    run_cases(rules_file, cases, tmp_path)


def test_pool_patterns_match_their_own_pods_only():
    """The exporter's `hostname` is the pod name: each pool's rules must match the pods of
    its own Deployment (<name>-<template hash>-<suffix>) and no other pool's."""
    spec = render_rules(values_files=(VALUES_DIR / "pools.yaml",))
    patterns = {
        r["labels"]["pool"]: re.search(r'hostname=~"([^"]+)"', r["expr"]).group(1)
        for r in rules_of(spec)
        if r["alert"] == "CeleryBacklogAtMaxReplicas"
    }
    deployments = {
        d["metadata"]["labels"]["celery-harder.io/pool"]: d["metadata"]["name"]
        for d in render_case("helm4", "pools").of_kind("Deployment")
        if "celery-harder.io/pool" in d["metadata"]["labels"]
    }
    pods = {
        pool: [f"{name}-7d9f8b6c4-x2k9z", f"{name}-5b4-bq2zt"] for pool, name in deployments.items()
    }
    assert set(pods) == {"default", "cpu", "io"}
    for pool, pattern in patterns.items():
        for other, names in pods.items():
            for name in names:
                assert bool(re.fullmatch(pattern, name)) == (pool == other), (pattern, name)
        assert not re.fullmatch(pattern, f"{pods[pool][0]}.celery-harder.svc")
