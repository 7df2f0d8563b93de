"""T0: the pure parts of the metrics: builders, workflow outcomes, queue keys, in-flight
parsing, the operator's phase tracking and handler counting."""

import asyncio
import inspect
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kombu.transport.redis import Channel
from prometheus_client import CollectorRegistry, generate_latest

from celery_harder import metric_names as mn
from celery_harder.metrics_registry import WorkflowMetrics, counter, gauge, histogram
from celery_harder.queues import OTHER_QUEUE, in_flight_by_queue, priority_keys, queue_keys
from celery_harder.results import TaskError, TaskStatus
from celery_harder.settings import Settings
from celery_harder.workflow.compiler import workflow_leaves
from celery_harder.workflow.observer import duration_seconds, outcome_of
from celery_harder.workflow.spec import parse_workflow
from celery_harder.workflow.status import (
    REASON_CANCELLED,
    REASON_TIMEOUT,
    RecordView,
    aggregate,
)
from celery_harder_api.metrics import root_kind
from celery_harder_dev.local_processes import free_port
from celery_harder_operator import metrics as om

TWO = {"group": [{"task": "add", "args": [1, 1]}, {"task": "add", "args": [2, 2]}]}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# --- builders ----------------------------------------------------------------------


def test_builders_register_the_registry_names_with_their_labels_and_buckets() -> None:
    registry = CollectorRegistry()
    counter(mn.TASKS_SUBMITTED, registry).labels(task="add").inc(3)
    gauge(mn.WORKFLOWS_OVERDUE, registry).set(2)
    histogram(mn.OPERATOR_DISPATCH_LATENCY, registry).observe(0.03)
    assert sample(registry, mn.TASKS_SUBMITTED.series, task="add") == 3
    assert sample(registry, mn.WORKFLOWS_OVERDUE.series) == 2
    bucket = mn.OPERATOR_DISPATCH_LATENCY.name + "_bucket"
    assert sample(registry, bucket, le="0.025") == 0
    assert sample(registry, bucket, le="0.05") == 1
    text = generate_latest(registry).decode()
    assert f"# HELP {mn.TASKS_SUBMITTED.series} {mn.TASKS_SUBMITTED.help}" in text
    les = [line.split('le="')[1].split('"')[0] for line in text.splitlines() if "_bucket{" in line]
    assert [float(le) for le in les[:-1]] == list(mn.DISPATCH_BUCKETS) and les[-1] == "+Inf"


def test_a_builder_refuses_a_metric_of_another_kind() -> None:
    with pytest.raises(TypeError, match="is a gauge, not a counter"):
        counter(mn.QUEUE_WAITING, CollectorRegistry())


def test_workflow_metrics_count_outcomes_and_durations() -> None:
    registry = CollectorRegistry()
    observer = WorkflowMetrics(registry)
    observer.on_started()
    observer.on_finished("failed", 1.5)
    observer.on_finished("timed_out", 40.0)
    observer.on_finished("timed_out", None)
    assert sample(registry, mn.WORKFLOWS_STARTED.series) == 1
    finished = {o: sample(registry, mn.WORKFLOWS_FINISHED.series, outcome=o) for o in mn.OUTCOMES}
    assert finished == {"succeeded": 0, "failed": 1, "cancelled": 0, "timed_out": 2}
    count = mn.WORKFLOW_DURATION.name + "_count"
    assert sample(registry, count, outcome="timed_out") == 1
    assert sample(registry, mn.WORKFLOW_DURATION.name + "_sum", outcome="failed") == 1.5
    with pytest.raises(ValueError, match="unknown workflow outcome"):
        observer.on_finished("Succeeded", 1.0)


# --- outcomes ----------------------------------------------------------------------


def status_of(states: list[tuple[str, Any]], cancel_reason: str | None = None):
    tree = parse_workflow(TWO)
    rv = RecordView(
        "w", tree, workflow_leaves("w", tree), cancel_reason=cancel_reason, timeout_seconds=5
    )
    statuses = [
        TaskStatus(leaf.task_id, state, error=TaskError("E", "m") if state == "FAILURE" else None)
        for leaf, (state, _) in zip(rv.leaves, states, strict=True)
    ]
    return aggregate(rv, statuses, [None] * len(statuses))


@pytest.mark.parametrize(
    ("states", "reason", "outcome"),
    [
        ([("SUCCESS", 2), ("SUCCESS", 4)], None, "succeeded"),
        ([("SUCCESS", 2), ("FAILURE", None)], None, "failed"),
        ([("SUCCESS", 2), ("PENDING", None)], REASON_CANCELLED, "cancelled"),
        ([("SUCCESS", 2), ("PENDING", None)], REASON_TIMEOUT, "timed_out"),
    ],
)
def test_the_outcome_of_each_final_phase(states, reason, outcome) -> None:
    status = status_of(states, reason)
    assert status.finished
    assert outcome_of(status) == outcome


def test_an_unfinished_workflow_has_no_outcome() -> None:
    with pytest.raises(ValueError, match="not finished"):
        outcome_of(status_of([("SUCCESS", 2), ("STARTED", None)]))


def test_duration_from_creation_to_finish() -> None:
    created = "2026-01-01T10:00:00+00:00"
    assert duration_seconds(created, "2026-01-01T10:01:30.500000+00:00") == 90.5
    assert duration_seconds(created, "2026-01-01T09:59:59+00:00") == 0.0  # clock skew
    assert duration_seconds(None, created) is None
    assert duration_seconds(created, "not a time") is None


def test_the_engine_module_imports_no_prometheus() -> None:
    code = (
        "import sys, celery_harder.workflow.engine, celery_harder.task_client;"
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- API: root kind ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["task", "chain", "group", "chord"])
def test_root_kind(kind: str) -> None:
    spec = {kind: {"x": 1}} if kind != "task" else {"task": "add", "args": [1, 2]}
    assert root_kind(spec) == kind


def test_root_kind_of_no_node() -> None:
    with pytest.raises(ValueError):
        root_kind({"steps": []})


# --- queues -------------------------------------------------------------------------


def test_priority_sub_lists_are_named_as_kombu_names_them() -> None:
    channel = Channel.__new__(Channel)  # kombu's own naming, without a connection
    channel.sep, channel.priority_steps = Channel.sep, Channel.priority_steps
    expected = [channel._q_for_pri("jobs", step) for step in (0, 3, 6, 9)]
    assert expected == ["jobs", "jobs\x06\x163", "jobs\x06\x166", "jobs\x06\x169"]
    assert queue_keys("jobs") == expected
    assert priority_keys("jobs") == list(zip((0, 3, 6, 9), expected, strict=True))


def unacked_value(routing_key: str, exchange: str = "") -> bytes:
    """One value of kombu's unacked hash: dumps([message._raw, exchange, routing_key])."""
    raw = {"body": "e30=", "headers": {"task": "add"}, "properties": {"priority": 0}}
    return json.dumps([raw, exchange, routing_key]).encode()


def test_in_flight_counts_by_routing_key_within_the_configured_queues() -> None:
    values = [
        unacked_value("celery"),
        unacked_value("celery", "celery"),
        unacked_value("cpu"),
        unacked_value("someone-elses"),
        b"not json",
        json.dumps({"a": 1}).encode(),
    ]
    counts = in_flight_by_queue(values, ("celery", "cpu", "io"))
    assert counts == {"celery": 2, "cpu": 1, "io": 0, OTHER_QUEUE: 3}
    assert in_flight_by_queue([], ("celery",)) == {"celery": 0}


def test_unacked_keys_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_HARDER_UNACKED_KEYS", raising=False)
    monkeypatch.delenv("CELERY_HARDER_UNACKED_KEY", raising=False)
    assert Settings().all_unacked_keys == ("unacked",)
    assert Settings(unacked_key="unacked-cpu").all_unacked_keys == ("unacked-cpu",)
    monkeypatch.setenv("CELERY_HARDER_UNACKED_KEYS", "unacked, unacked-cpu")
    assert Settings().all_unacked_keys == ("unacked", "unacked-cpu")
    monkeypatch.setenv("CELERY_HARDER_UNACKED_KEYS", "bad key!")
    with pytest.raises(ValueError):
        Settings()


# --- operator -----------------------------------------------------------------------


def test_phase_labels_stay_bounded() -> None:
    assert om.taskworkflow_phase({}) == "Pending"
    assert om.taskworkflow_phase({"phase": "Running"}) == "Running"
    assert om.taskworkflow_phase({"phase": "Exploded"}) == "Other"
    ready = {"conditions": [{"type": "Ready", "reason": "Suspended"}]}
    assert om.cron_phase(ready) == "Suspended"
    assert om.cron_phase({}) == "Pending"
    assert om.cron_phase({"conditions": [{"type": "Ready", "reason": "Odd"}]}) == "Other"


def test_resource_phases_follow_watch_events() -> None:
    phases = om.ResourcePhases()
    phases.apply(om.TASKWORKFLOW, None, "a", "Pending")  # the initial listing
    phases.apply(om.TASKWORKFLOW, "ADDED", "b", "Pending")
    phases.apply(om.TASKWORKFLOW, "MODIFIED", "a", "Running")
    phases.apply(om.TASKWORKFLOW, "MODIFIED", "a", "Succeeded")
    phases.apply(om.CRONTASKWORKFLOW, "ADDED", "c", "Scheduled")
    phases.apply(om.TASKWORKFLOW, "DELETED", "b", "Pending")
    counts = phases.counts()
    assert counts[(om.TASKWORKFLOW, "Succeeded")] == 1
    assert counts[(om.TASKWORKFLOW, "Pending")] == 0
    assert counts[(om.TASKWORKFLOW, "Running")] == 0
    assert counts[(om.CRONTASKWORKFLOW, "Scheduled")] == 1
    assert sum(counts.values()) == 2
    registry = CollectorRegistry()
    registry.register(phases)
    labels = {"kind": om.TASKWORKFLOW, "phase": "Succeeded"}
    assert registry.get_sample_value(mn.OPERATOR_RESOURCES.series, labels) == 1


def test_dispatch_latency_from_the_creation_timestamp() -> None:
    now = datetime(2026, 1, 1, 10, 0, 2, 500000, tzinfo=UTC)
    assert om.dispatch_latency("2026-01-01T10:00:00Z", now) == 2.5
    assert om.dispatch_latency("2026-01-01T10:00:03Z", now) == 0.0
    assert om.dispatch_latency(None, now) is None
    assert om.dispatch_latency("yesterday", now) is None


def test_instrumented_counts_runs_and_errors_and_keeps_the_handler_id() -> None:
    metrics = om.OperatorMetrics()

    @om.instrumented("sync", metrics)
    def sync(fail: bool = False, **_: Any) -> str:
        if fail:
            raise RuntimeError("boom")
        return "ok"

    assert sync.__qualname__.endswith("sync") and sync.__name__ == "sync"
    assert metrics.registry.get_sample_value(
        mn.OPERATOR_RECONCILES.series, {"handler": "sync"}
    ) == 0  # fmt: skip
    assert sync() == "ok"
    with pytest.raises(RuntimeError):
        sync(fail=True)
    runs = metrics.registry.get_sample_value(mn.OPERATOR_RECONCILES.series, {"handler": "sync"})
    errors = metrics.registry.get_sample_value(
        mn.OPERATOR_RECONCILE_ERRORS.series, {"handler": "sync"}
    )
    assert (runs, errors) == (2, 1)


def test_instrumented_keeps_an_async_handler_async() -> None:
    """kopf awaits a coroutine function; a sync wrapper would hand it an unawaited coroutine."""
    metrics = om.OperatorMetrics()

    @om.instrumented("sync", metrics)
    async def sync(fail: bool = False, **_: Any) -> str:
        if fail:
            raise RuntimeError("boom")
        return "ok"

    assert inspect.iscoroutinefunction(sync) and sync.__name__ == "sync"
    assert asyncio.run(sync()) == "ok"
    with pytest.raises(RuntimeError):
        asyncio.run(sync(fail=True))
    runs = metrics.registry.get_sample_value(mn.OPERATOR_RECONCILES.series, {"handler": "sync"})
    errors = metrics.registry.get_sample_value(
        mn.OPERATOR_RECONCILE_ERRORS.series, {"handler": "sync"}
    )
    assert (runs, errors) == (2, 1)


def test_the_operator_serves_its_registry_over_http_and_stops() -> None:
    metrics = om.OperatorMetrics()
    metrics.synced()
    assert om.serve(0, "127.0.0.1", metrics) is None  # port 0: not served
    port = free_port()
    stop = om.serve(port, "127.0.0.1", metrics)
    assert stop is not None
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop()
    assert f"{mn.OPERATOR_LAST_SYNC.series} " in text
    assert f'{mn.OPERATOR_RESOURCES.series}{{kind="TaskWorkflow",phase="Running"}} 0.0' in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
