"""Chart policy, the alert rules and the dashboard."""

import json

import pytest

from .chartlib import HELMS, render_case
from .test_alert_rules import ALERTS


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_monitoring_rules_and_dashboard(helm):
    render = render_case(helm, "ci-kind")
    (rule,) = render.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == ALERTS
    # ci/kind-values.yaml caps the default pool at 4 replicas
    assert ">= 4" in alerts["CeleryBacklogAtMaxReplicas"]["expr"]
    assert alerts["CeleryBacklogAtMaxReplicas"]["labels"]["pool"] == "default"
    assert (
        "[10m]" in alerts["CeleryTaskHighFailRate"]["expr"]
        and "> 5" in alerts["CeleryTaskHighFailRate"]["expr"]
    )
    assert "{{ $labels.queue }}" in alerts["CeleryQueueNotConsumed"]["annotations"]["description"]
    off = render_case(helm, "monitoring-on").of_kind("PrometheusRule")[0]
    rules = {r["alert"] for g in off["spec"]["groups"] for r in g["rules"]}
    assert "CeleryQueueNotConsumed" not in rules and "CeleryBacklogAtMaxReplicas" in rules
    (dash,) = [
        c
        for c in render.of_kind("ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    boards = {name: json.loads(text) for name, text in dash["data"].items()}
    assert {b["uid"] for b in boards.values()} == {
        "celery-harder-overview",
        "celery-harder-tasks",
        "celery-harder-workflows",
    }
    exprs = " ".join(
        t["expr"] for b in boards.values() for p in b["panels"] for t in p.get("targets", [])
    )
    for metric in (
        "celery_task_failed_total",
        "celery_harder_queue_waiting_messages",
        "celery_worker_up",
        "celery_task_runtime_bucket",
    ):
        assert metric in exprs
    monitors = {m["metadata"]["name"]: m for m in render.of_kind("ServiceMonitor")}
    assert set(monitors) == {
        "celery-harder-exporter", "celery-harder-api", "celery-harder-flower",
        "celery-harder-operator",
    }  # fmt: skip
    services = {s["metadata"]["name"]: s for s in render.of_kind("Service")}
    for name, sm in monitors.items():
        svc = services[name]
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
