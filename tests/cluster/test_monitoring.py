"""T4-local: a Prometheus in the cluster finds the chart's ServiceMonitors and scrapes them.

The real Prometheus Operator runs on the node with a Prometheus (both built from their
modules by scripts/build-node.sh) that selects every ServiceMonitor and PrometheusRule. The
chart is installed with monitoring on; every target its ServiceMonitors select must be
discovered through the API server and be `up == 1`, and its alert rules must load.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from celery_harder_dev.cluster import LocalCluster
from celery_harder_dev.cluster.monitoring import install_prometheus_operator, prometheus_pod_ip
from tests.support.polling import wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4


@pytest.fixture(scope="module")
def monitored(local_cluster: LocalCluster, release: Release) -> Iterator[tuple[Release, str]]:
    """The release with monitoring on and a Ready Prometheus; monitoring off afterwards."""
    install_prometheus_operator(release.kubectl)
    release.install(sets=["monitoring.enabled=true", "monitoring.interval=5s"])
    try:
        ip = wait_until(lambda: prometheus_pod_ip(release.kubectl), 300, 2, "Prometheus Ready")
        yield release, f"http://{ip}:9090"
    finally:
        release.install()


def _get(url: str, path: str, **params: str) -> Any:
    response = httpx.get(url + path, params=params, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def _service_monitors(release: Release) -> list[str]:
    items = release.get("servicemonitors.monitoring.coreos.com", "-o", "json")["items"]
    return sorted(item["metadata"]["name"] for item in items)


def test_every_servicemonitor_target_is_discovered_and_up(monitored: tuple[Release, str]) -> None:
    release, url = monitored
    monitors = _service_monitors(release)
    assert {release.component(c) for c in ("api", "flower", "exporter")} <= set(monitors)
    pools = {f"serviceMonitor/{release.namespace}/{name}/0" for name in monitors}

    seen: dict[str, list[str]] = {}

    def all_up() -> dict[str, list[str]] | None:
        active = _get(url, "/api/v1/targets", state="active")["activeTargets"]
        seen.clear()
        for target in active:
            if target["scrapePool"] in pools:
                seen.setdefault(target["scrapePool"], []).append(
                    target["health"] + (f" ({target['lastError']})" if target["lastError"] else "")
                )
        healthy = set(seen) == pools and all(h == ["up"] * len(h) for h in seen.values())
        return dict(seen) if healthy else None

    try:
        by_pool = wait_until(all_up, 180, 2, f"every target of {sorted(pools)} up")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; active targets: {seen}") from None
    print({pool: len(health) for pool, health in by_pool.items()})

    up = _get(url, "/api/v1/query", query=f'up{{namespace="{release.namespace}"}}')["result"]
    jobs = {sample["metric"]["job"]: sample["value"][1] for sample in up}
    assert jobs and set(jobs.values()) == {"1"}, jobs
    assert {release.component(c) for c in ("api", "flower", "exporter")} <= set(jobs), jobs


def test_the_chart_rules_load_and_evaluate(monitored: tuple[Release, str]) -> None:
    release, url = monitored

    def loaded() -> list[dict[str, Any]]:
        groups = _get(url, "/api/v1/rules")["groups"]
        return [g for g in groups if release.namespace in g["file"]]

    groups = wait_until(loaded, 120, 2, "the chart's PrometheusRule loaded")
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules, groups

    def evaluated() -> bool:
        current = [r for g in loaded() for r in g["rules"]]
        return all(r.get("lastEvaluation", "").startswith("20") for r in current)

    wait_until(evaluated, 120, 2, "every rule evaluated once")
    unhealthy = [(r["name"], r.get("lastError")) for g in loaded() for r in g["rules"]
                 if r["health"] != "ok"]  # fmt: skip
    assert not unhealthy, unhealthy
