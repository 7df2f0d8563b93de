"""The chart's monitoring objects, rendered by helm: its rules and what it scrapes.

The local Prometheus (tests, `make dev PROMETHEUS=1`) loads the rules the chart's
PrometheusRule carries, and names its scrape jobs after the Services the chart's
ServiceMonitors select, so dashboards and alerts see the labels they would see in a
cluster. helm v4 comes from scripts/install-k8s-tools.sh (`make tools`).
"""

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from celery_harder_dev.cluster.layout import cache_root
from celery_harder_dev.exporter import SCRAPE_INTERVAL as EXPORTER_SCRAPE_INTERVAL
from celery_harder_dev.prometheus import ScrapeTarget, target_labels

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "celery-harder"
DASHBOARDS = CHART / "files" / "dashboards"
RELEASE = "celery-harder"
NAMESPACE = "celery-harder"
COMPONENT_LABEL = "app.kubernetes.io/component"


def find_helm() -> Path:
    """helm v4 from the tools cache ($HELM overrides), or FileNotFoundError with the fix."""
    override = os.environ.get("HELM")
    tools = cache_root() / "tools"
    for path in [Path(override)] if override else [tools / "helm-v4" / "helm", tools / "helm-v4"]:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        f"no helm at {tools / 'helm-v4'}: run `bash scripts/install-k8s-tools.sh` (make tools)"
    )


def render_monitoring(
    namespace: str = NAMESPACE, release: str = RELEASE, sets: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """`helm template` of the chart with monitoring.enabled=true: every object."""
    args = [str(find_helm()), "template", release, str(CHART), "--namespace", namespace]
    for value in ("monitoring.enabled=true", *sets):
        args += ["--set", value]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed: {proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def rule_spec(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The PrometheusRule's spec (a rule file: `groups:`); exactly one is rendered."""
    (rule,) = [o for o in objects if o.get("kind") == "PrometheusRule"]
    spec: dict[str, Any] = rule["spec"]
    return spec


def write_rule_file(objects: Sequence[dict[str, Any]], path: Path) -> Path:
    """The PrometheusRule's spec as a file Prometheus loads."""
    path.write_text(yaml.safe_dump(rule_spec(objects)))
    return path


@dataclass(frozen=True)
class MonitoredService:
    """A Service a ServiceMonitor selects: component, Service name (= job), port name."""

    component: str
    service: str
    port: str
    honor_labels: bool


def monitored_services(objects: Sequence[dict[str, Any]]) -> list[MonitoredService]:
    """What the chart's ServiceMonitors scrape, resolved to their Services."""
    services = [o for o in objects if o.get("kind") == "Service"]
    found = []
    for monitor in (o for o in objects if o.get("kind") == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [
            s
            for s in services
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        for endpoint in monitor["spec"]["endpoints"]:
            found.append(
                MonitoredService(
                    component=selector.get(COMPONENT_LABEL, service["metadata"]["name"]),
                    service=service["metadata"]["name"],
                    port=endpoint.get("port", ""),
                    honor_labels=bool(endpoint.get("honorLabels", False)),
                )
            )
    return found


def dashboard_files() -> list[Path]:
    """The chart's dashboard JSON files."""
    return sorted(DASHBOARDS.glob("*.json"))


def scrape_targets(
    objects: Sequence[dict[str, Any]],
    urls: dict[str, str],
    namespace: str = NAMESPACE,
    cluster: str = "local",
    release: str = RELEASE,
) -> list[ScrapeTarget]:
    """Local targets for `urls` (component -> base URL), labelled as the chart's monitors.

    A component the chart's ServiceMonitors select gets its Service's name as `job`,
    its port name as `endpoint` and its honorLabels; one they do not select yet (the
    operator) gets `<release>-<component>`, the chart's naming.
    """
    monitored = {s.component: s for s in monitored_services(objects)}
    targets = []
    for component, url in urls.items():
        found = monitored.get(component)
        job = found.service if found else f"{release}-{component}"
        targets.append(
            ScrapeTarget(
                job=job,
                address=url.removeprefix("http://"),
                labels=target_labels(job, namespace, cluster, found.port if found else "http"),
                honor_labels=found.honor_labels if found else False,
                interval=EXPORTER_SCRAPE_INTERVAL if component == "exporter" else None,
            )
        )
    return targets
