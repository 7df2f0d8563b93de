"""Chart policy, metrics wiring: the operator's /metrics port, Service and ServiceMonitor,
and the in-flight hashes the API's /metrics reads."""

import pytest

from .chartlib import HELMS, pod_spec, render_case, render_fails, render_sets


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_the_operator_serves_metrics_on_its_port_behind_a_service(helm):
    render = render_sets(helm, ("monitoring.enabled=true", "operator.metricsPort=9123"))
    dep = render.get("Deployment", "celery-harder-operator")
    (container,) = pod_spec(dep)["containers"]
    assert env_of(container)["CELERY_HARDER_OPERATOR_METRICS_PORT"] == "9123"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9123}
    svc = render.get("Service", "celery-harder-operator")
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("metrics", 9123, "metrics")
    ]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (monitor,) = [
        m
        for m in render.of_kind("ServiceMonitor")
        if m["metadata"]["name"] == svc["metadata"]["name"]
    ]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_metrics_and_liveness_need_a_port_each(helm):
    stderr = render_fails(helm, "operator.metricsPort=8080")
    assert "operator.metricsPort and operator.livenessPort are both 8080" in stderr


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_no_operator_no_operator_service_or_monitor(helm):
    render = render_sets(helm, ("monitoring.enabled=true", "operator.enabled=false"))
    names = {
        o["metadata"]["name"] for o in render.docs if o["kind"] in ("Service", "ServiceMonitor")
    }
    assert "celery-harder-operator" not in names
    assert "celery-harder-api" in names


@pytest.mark.parametrize("helm", sorted(HELMS))
@pytest.mark.parametrize("case", ["defaults", "pools"])
def test_the_api_is_told_every_pools_in_flight_hash(helm, case):
    render = render_case(helm, case)
    workers = [
        w for w in render.of_kind("Deployment")
        if w["metadata"]["labels"]["app.kubernetes.io/component"].startswith("worker")
    ]  # fmt: skip
    keys = [env_of(pod_spec(w)["containers"][0])["CELERY_HARDER_UNACKED_KEY"] for w in workers]
    (config,) = [c for c in render.of_kind("ConfigMap") if "CELERY_HARDER_QUEUE" in c["data"]]
    listed = config["data"]["CELERY_HARDER_UNACKED_KEYS"].split(",")
    assert sorted(listed) == sorted(keys) and len(set(listed)) == len(listed)
    assert len(keys) == (1 if case == "defaults" else len(workers)) >= 1
