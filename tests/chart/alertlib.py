"""The chart's alert rules, rendered by helm: the one place tests read them from.

    from tests.chart.alertlib import render_rules, rule_queries
    spec = render_rules()                 # the PrometheusRule's spec, chart defaults
    for alert, expr in rule_queries():    # every rule's PromQL
        ...

The rules filter on `namespace="<release namespace>"` and the API's rules on
`job="<release>-api"` (the ServiceMonitor's job, the API Service's name): a
Prometheus that scrapes a local stack gives its targets those two labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .chartlib import CHART, NAMESPACE, RELEASE, run_helm, template_args

RUNBOOK = CHART.parents[1] / "docs" / "runbook.md"


def render_rules(
    sets: tuple[str, ...] = (),
    values_files: tuple[Path, ...] = (),
    namespace: str = NAMESPACE,
    helm: str = "helm4",
) -> dict[str, Any]:
    """The rendered PrometheusRule's spec (`monitoring.enabled=true` added)."""
    args = template_args(values_files, ("monitoring.enabled=true", *sets), namespace)
    proc = run_helm(helm, *args, "--show-only", "templates/monitoring/prometheusrule.yaml")
    (rule,) = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert rule["kind"] == "PrometheusRule", rule
    spec: dict[str, Any] = rule["spec"]
    return spec


def rules_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in spec["groups"] for r in g["rules"]]


def rule_queries(spec: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(alert name, PromQL expression) of every rule, chart defaults unless `spec` is given."""
    spec = render_rules() if spec is None else spec
    return [(r.get("alert") or r["record"], r["expr"]) for r in rules_of(spec)]


def chart_values() -> dict[str, Any]:
    """The chart's default values.yaml."""
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def api_job() -> str:
    """The `job` label of the API's targets: its Service's name under the default release."""
    return f"{RELEASE}-api"
