"""Chart policy, the alert rules and the dashboard."""

import json

import pytest

from .chartlib import HELMS, render_case


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_monitoring_rules_and_dashboard(helm):
    render = render_case(helm, "ci-kind")
    (rule,) = render.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"CeleryTaskHighFailRate", "CeleryHighQueueLength", "CeleryWorkerDown"}
    assert (
        alerts["CeleryHighQueueLength"]["for"] == "20m"
        and "> 100" in alerts["CeleryHighQueueLength"]["expr"]
    )
    assert alerts["CeleryWorkerDown"]["for"] == "15m"
    assert (
        "[10m]" in alerts["CeleryTaskHighFailRate"]["expr"]
        and "> 5" in alerts["CeleryTaskHighFailRate"]["expr"]
    )
    assert (
        "{{ $labels.queue_name }}" in alerts["CeleryHighQueueLength"]["annotations"]["description"]
    )
    off = render_case(helm, "monitoring-on").of_kind("PrometheusRule")[0]
    assert "CeleryWorkerDown" not in {r["alert"] for g in off["spec"]["groups"] for r in g["rules"]}
    (dash,) = [
        c
        for c in render.of_kind("ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    board = json.loads(dash["data"]["celery-harder-overview.json"])
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for metric in (
        "celery_task_failed_total",
        "celery_queue_length",
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
