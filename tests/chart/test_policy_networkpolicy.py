"""Chart policy, NetworkPolicies: they select rendered pods and allow just the traffic needed."""

import pytest

from .chartlib import pod_labels, pod_spec, render_case
from .policylib import CASES, _allowed, _is_hook


@pytest.mark.parametrize("helm,case", CASES)
def test_networkpolicies_select_rendered_pods(helm, case):
    render = render_case(helm, case)
    # Hooks are left out: the password Job runs before any policy exists on install and
    # serves nothing; the helm test pod is a client of the API policy (checked below).
    pods = [pod_labels(w) for w in render.workloads() if not _is_hook(w)]
    policies = render.of_kind("NetworkPolicy")
    assert policies
    covered = set()
    for np in policies:
        sel = np["spec"]["podSelector"]["matchLabels"]
        matching = [p for p in pods if all(p.get(k) == v for k, v in sel.items())]
        assert matching, f"NetworkPolicy {np['metadata']['name']} selects nothing"
        covered |= {p["app.kubernetes.io/component"] for p in matching}
    components = {p["app.kubernetes.io/component"] for p in pods}
    assert covered == components, f"pods without a NetworkPolicy: {components - covered}"
    redis_np = [np for np in policies if np["metadata"]["name"] == "celery-harder-redis"]
    if redis_np:
        # every pod that receives CELERY_BROKER_URL carries the Redis-client label
        for w in render.workloads():
            env = {e["name"] for c in pod_spec(w)["containers"] for e in c.get("env", [])}
            if "CELERY_BROKER_URL" in env or "CE_BROKER_URL" in env:
                assert pod_labels(w).get("celery-harder.io/redis-client") == "true", w["metadata"][
                    "name"
                ]


@pytest.mark.parametrize("helm,case", CASES)
def test_networkpolicies_allow_exactly_the_needed_traffic(helm, case):
    render = render_case(helm, case)
    pods = {pod_labels(w)["app.kubernetes.io/component"]: w for w in render.workloads()}
    ns = "celery-harder"
    if "redis" in pods:
        workers = [c for c in pods if c == "worker" or c.startswith("worker-")]
        for client in ("api", "flower", "exporter", "operator", *workers):
            if client in pods:
                assert _allowed(render, pod_labels(pods[client]), ns, pods["redis"], 6379), (
                    f"{client} -> redis blocked"
                )
        assert not _allowed(render, pod_labels(pods["test-api"]), ns, pods["redis"], 6379), (
            "test pod reaches redis"
        )
        assert not _allowed(render, {"app": "stranger"}, ns, pods["redis"], 6379), (
            "any pod reaches redis"
        )
        # KEDA reads Redis exactly when some pool has a ScaledObject
        assert _allowed(render, {"app": "keda-operator"}, "keda", pods["redis"], 6379) is bool(
            render.of_kind("ScaledObject")
        )
    assert _allowed(render, pod_labels(pods["test-api"]), ns, pods["api"], 8000), (
        "helm test pod cannot reach the API"
    )
    for component in (c for c in pods if c == "worker" or c.startswith("worker-")):
        assert not _allowed(render, pod_labels(pods["api"]), ns, pods[component], 8000), (
            f"{component} accepts ingress"
        )
    assert not _allowed(render, pod_labels(pods["api"]), ns, pods["operator"], 8080), (
        "operator accepts ingress beyond its metrics port"
    )
    # Prometheus scrapes the operator's /metrics (from anywhere unless ingressFrom says).
    prometheus_ns = "ingress-nginx" if case == "auth-on" else "monitoring"
    prometheus = {"app": "nginx"} if case == "auth-on" else {"app": "prometheus"}
    assert _allowed(render, prometheus, prometheus_ns, pods["operator"], 8081), (
        "Prometheus cannot scrape the operator"
    )
    assert not _allowed(render, pod_labels(pods["test-api"]), ns, pods["api"], 9999), (
        "API open beyond its port"
    )
    if case == "auth-on":
        assert not _allowed(render, {"app": "stranger"}, "elsewhere", pods["api"], 8000)
        assert _allowed(render, {"app": "nginx"}, "ingress-nginx", pods["api"], 8000)
