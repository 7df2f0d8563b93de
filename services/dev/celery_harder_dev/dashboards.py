"""The chart's Grafana dashboards, built with grafana-foundation-sdk: the one source of
charts/celery-harder/files/dashboards/*.json.

    python -m celery_harder_dev.dashboards --write   # regenerate the JSON files
    python -m celery_harder_dev.dashboards --check   # exit 1 when a file is out of date

tests/chart/test_dashboards.py checks that the committed files are this module's output.
Every query filters on the `cluster`, `namespace` and `job` variables and reads through
the `datasource` variable; metric names come from celery_harder.metric_names. The
alerts' `dashboard_url` annotations point at the uids below (/d/<uid>).

`dashboard_queries()` lists every panel query as (dashboard uid, panel title, PromQL);
`expand()` puts values in for the dashboard variables, so that a test can send the
queries to a Prometheus as Grafana would.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as gcommon
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from celery_harder import metric_names as m

REPO = Path(__file__).resolve().parents[3]
OUT_DIR = REPO / "charts" / "celery-harder" / "files" / "dashboards"

#: The variables every dashboard has; queries filter on the last three.
VARIABLES = ("datasource", "cluster", "namespace", "job")
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
FILTER = 'cluster=~"$cluster", namespace=~"$namespace", job=~"$job"'
RATE = "$__rate_interval"
#: The SSE stream stays open for a workflow's lifetime: not a request latency.
SSE_HANDLER = "/workflows/{workflow_id}/events"


def sel(metric: str, *matchers: str) -> str:
    """`metric{<the variables' filter>, matchers...}`."""
    return f"{metric}{{{', '.join((FILTER, *matchers))}}}"


def rate(metric: str, *matchers: str) -> str:
    return f"rate({sel(metric, *matchers)}[{RATE}])"


def bucket(metric: m.Metric) -> str:
    assert metric.kind == "histogram", metric
    return f"{metric.name}_bucket"


def quantile(q: float, metric: m.Metric, by: str = "", *matchers: str) -> str:
    labels = ", ".join(("le", *([by] if by else [])))
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(bucket(metric), *matchers)}))"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    #: Extra query variables: (name, label, PromQL selector, label to list).
    variables: tuple[tuple[str, str, str, str], ...] = field(default=())

    @property
    def file(self) -> str:
        return f"{self.uid}.json"


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def qs(*queries: Query) -> tuple[Query, ...]:
    return queries


# --- The dashboards --------------------------------------------------------------------

STATUS_5XX = 'status="5xx"'
FAILING = 'outcome=~"failed|timed_out"'
TASK = 'name=~"$task"'
SUBMITTED_TASK = 'task=~"$task"'
AN_EXCEPTION = 'exception!=""'
NOT_SSE = f'handler!="{SSE_HANDLER}"'
WAITING = f"max by (namespace, queue) ({sel(m.QUEUE_WAITING.series)})"

OVERVIEW = Board(
    uid="celery-harder-overview",
    title="celery-harder / Overview",
    description="The API, the queues (priority sub-lists and in flight), workers and workflows.",
    rows=(
        Row(
            "API",
            (
                Panel(
                    "Requests by status",
                    qs(q(f"sum by (status) ({rate(m.HTTP_REQUESTS.series)})", "{{status}}")),
                    unit="reqps",
                    width=8,
                ),
                Panel(
                    "5xx ratio",
                    qs(
                        q(
                            # no 5xx series at all is a real 0 %
                            f"(sum({rate(m.HTTP_REQUESTS.series, STATUS_5XX)}) or vector(0))"
                            f" / sum({rate(m.HTTP_REQUESTS.series)})",
                            "5xx",
                        )
                    ),
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "Latency p50 / p99 (SSE stream excluded)",
                    qs(
                        q(
                            quantile(0.5, m.HTTP_REQUEST_DURATION, "", NOT_SSE),
                            "p50",
                        ),
                        q(
                            quantile(0.99, m.HTTP_REQUEST_DURATION, "", NOT_SSE),
                            "p99",
                        ),
                    ),
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Requests by route",
                    qs(
                        q(
                            f"sum by (method, handler) ({rate(m.HTTP_REQUESTS.series)})",
                            "{{method}} {{handler}}",
                        )
                    ),
                    unit="reqps",
                    width=24,
                ),
            ),
        ),
        Row(
            "Queues",
            (
                Panel(
                    "Waiting, all queues",
                    qs(q(f"sum({WAITING})", "waiting")),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "In flight, all queues",
                    qs(
                        q(
                            f"sum(max by (namespace, queue) ({sel(m.QUEUE_IN_FLIGHT.series)}))",
                            "in flight",
                        )
                    ),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Redis read by every API replica",
                    qs(q(f"min({sel(m.REDIS_UP.series)})", "redis up")),
                    kind="stat",
                    width=6,
                    description="0 when an API replica's last scrape could not read the "
                    "queues from Redis: the queue gauges are absent then.",
                ),
                Panel(
                    "Queue read time per scrape",
                    qs(
                        q(
                            f"max by (instance) ({sel(m.QUEUE_SCRAPE_DURATION.series)})",
                            "{{instance}}",
                        )
                    ),
                    unit="s",
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Waiting by queue (priority sub-lists summed)",
                    qs(q(f"sum by (queue) ({WAITING})", "{{queue}}")),
                    width=12,
                ),
                Panel(
                    "Waiting by priority sub-list",
                    qs(
                        q(
                            f"max by (queue, priority) ({sel(m.QUEUE_WAITING_BY_PRIORITY.series)})",
                            "{{queue}} priority {{priority}}",
                        )
                    ),
                ),
                Panel(
                    "In flight by queue (delivered, not acknowledged)",
                    qs(
                        q(
                            f"max by (queue) ({sel(m.QUEUE_IN_FLIGHT.series)})",
                            "{{queue}}",
                        )
                    ),
                ),
            ),
        ),
        Row(
            "Workers",
            (
                Panel(
                    "Workers up",
                    qs(q(f"sum({sel(m.EXPORTER_WORKER_UP.series)})", "up")),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Tasks running",
                    qs(q(f"sum({sel(m.EXPORTER_WORKER_TASKS_ACTIVE.series)})", "running")),
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Running tasks by worker",
                    qs(
                        q(
                            f"sum by (hostname) ({sel(m.EXPORTER_WORKER_TASKS_ACTIVE.series)})",
                            "{{hostname}}",
                        )
                    ),
                ),
                Panel(
                    "Tasks started by queue",
                    qs(
                        q(
                            f"sum by (queue_name) ({rate(m.EXPORTER_TASK_STARTED.series)})",
                            "{{queue_name}}",
                        )
                    ),
                    unit="ops",
                ),
                Panel(
                    "Task outcomes",
                    qs(
                        q(f"sum({rate(m.EXPORTER_TASK_SUCCEEDED.series)})", "succeeded"),
                        q(f"sum({rate(m.EXPORTER_TASK_FAILED.series)})", "failed"),
                    ),
                    unit="ops",
                ),
            ),
        ),
        Row(
            "Workflows",
            (
                Panel(
                    "Workflows started and finished",
                    qs(
                        q(f"sum({rate(m.WORKFLOWS_STARTED.series)})", "started"),
                        q(f"sum by (outcome) ({rate(m.WORKFLOWS_FINISHED.series)})", "{{outcome}}"),
                    ),
                    unit="ops",
                    width=18,
                ),
                Panel(
                    "Workflows past their deadline",
                    qs(q(f"max({sel(m.WORKFLOWS_OVERDUE.series)})", "overdue")),
                    kind="stat",
                    width=6,
                ),
            ),
        ),
    ),
)


TASKS = Board(
    uid="celery-harder-tasks",
    title="celery-harder / Tasks",
    description="Tasks by name: submitted, received, started, outcomes, exceptions, runtime.",
    variables=(("task", "Task", sel(m.EXPORTER_TASK_RECEIVED.series), "name"),),
    rows=(
        Row(
            "Throughput",
            (
                Panel(
                    "Submitted through the API",
                    qs(
                        q(
                            f"sum by (task) ({rate(m.TASKS_SUBMITTED.series, SUBMITTED_TASK)})",
                            "{{task}}",
                        )
                    ),
                    unit="ops",
                ),
                Panel(
                    "Sent (task-sent events)",
                    qs(q(f"sum by (name) ({rate(m.EXPORTER_TASK_SENT.series, TASK)})", "{{name}}")),
                    unit="ops",
                ),
                Panel(
                    "Received by a worker",
                    qs(
                        q(
                            f"sum by (name) ({rate(m.EXPORTER_TASK_RECEIVED.series, TASK)})",
                            "{{name}}",
                        )
                    ),
                    unit="ops",
                ),
                Panel(
                    "Started",
                    qs(
                        q(
                            f"sum by (name) ({rate(m.EXPORTER_TASK_STARTED.series, TASK)})",
                            "{{name}}",
                        )
                    ),
                    unit="ops",
                ),
            ),
        ),
        Row(
            "Outcomes",
            (
                Panel(
                    "Succeeded",
                    qs(
                        q(
                            f"sum by (name) ({rate(m.EXPORTER_TASK_SUCCEEDED.series, TASK)})",
                            "{{name}}",
                        )
                    ),
                    unit="ops",
                ),
                Panel(
                    "Failed",
                    qs(
                        q(
                            f"sum by (name) ({rate(m.EXPORTER_TASK_FAILED.series, TASK)})",
                            "{{name}}",
                        )
                    ),
                    unit="ops",
                ),
                Panel(
                    "Failure ratio",
                    qs(
                        q(
                            f"sum by (name) ({rate(m.EXPORTER_TASK_FAILED.series, TASK)})"
                            f" / (sum by (name) ({rate(m.EXPORTER_TASK_FAILED.series, TASK)})"
                            f" + sum by (name) ({rate(m.EXPORTER_TASK_SUCCEEDED.series, TASK)}))",
                            "{{name}}",
                        )
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Failures by exception",
                    qs(
                        q(
                            # the exporter keeps an exception="" series at 0 for every task
                            "sum by (name, exception) "
                            f"({rate(m.EXPORTER_TASK_FAILED.series, TASK, AN_EXCEPTION)})",
                            "{{name}}: {{exception}}",
                        )
                    ),
                    unit="ops",
                ),
            ),
        ),
        Row(
            "Runtime",
            (
                Panel(
                    "Runtime p50",
                    qs(q(quantile(0.5, m.EXPORTER_TASK_RUNTIME, "name", TASK), "{{name}}")),
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Runtime p95",
                    qs(q(quantile(0.95, m.EXPORTER_TASK_RUNTIME, "name", TASK), "{{name}}")),
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Runtime p99",
                    qs(q(quantile(0.99, m.EXPORTER_TASK_RUNTIME, "name", TASK), "{{name}}")),
                    unit="s",
                    width=8,
                ),
            ),
        ),
    ),
)

RECONCILES = f"sum by (handler) ({rate(m.OPERATOR_RECONCILES.series)})"

WORKFLOWS = Board(
    uid="celery-harder-workflows",
    title="celery-harder / Workflows and operator",
    description="Workflows by outcome and duration; the operator's reconciles, resources, "
    "dispatch latency and last sync.",
    rows=(
        Row(
            "Workflows",
            (
                Panel(
                    "Submitted by root kind",
                    qs(
                        q(
                            f"sum by (kind) ({rate(m.WORKFLOWS_SUBMITTED.series)})",
                            "{{kind}}",
                        )
                    ),
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Started",
                    qs(q(f"sum({rate(m.WORKFLOWS_STARTED.series)})", "started")),
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Finished by outcome",
                    qs(
                        q(
                            f"sum by (outcome) ({rate(m.WORKFLOWS_FINISHED.series)})",
                            "{{outcome}}",
                        )
                    ),
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Failed or timed out, of finished",
                    qs(
                        q(
                            # none failed is a real 0 %
                            "(sum("
                            f"{rate(m.WORKFLOWS_FINISHED.series, FAILING)}"
                            f") or vector(0)) / sum({rate(m.WORKFLOWS_FINISHED.series)})",
                            "failing",
                        )
                    ),
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "Duration p50 / p95 by outcome",
                    qs(
                        q(quantile(0.5, m.WORKFLOW_DURATION, "outcome"), "p50 {{outcome}}"),
                        q(quantile(0.95, m.WORKFLOW_DURATION, "outcome"), "p95 {{outcome}}"),
                    ),
                    unit="s",
                    width=10,
                ),
                Panel(
                    "Past their deadline",
                    qs(q(f"max({sel(m.WORKFLOWS_OVERDUE.series)})", "overdue")),
                    kind="stat",
                    width=6,
                ),
            ),
        ),
        Row(
            "Operator",
            (
                Panel("Reconciles by handler", qs(q(RECONCILES, "{{handler}}")), unit="ops"),
                Panel(
                    "Reconcile errors by handler",
                    qs(
                        q(
                            # a handler that never raised has no error series: a real 0
                            f"sum by (handler) ({rate(m.OPERATOR_RECONCILE_ERRORS.series)})"
                            f" or {RECONCILES} * 0",
                            "{{handler}}",
                        )
                    ),
                    unit="ops",
                ),
                Panel(
                    "Resources by phase",
                    qs(
                        q(
                            f"sum by (kind, phase) ({sel(m.OPERATOR_RESOURCES.series)})",
                            "{{kind}} {{phase}}",
                        )
                    ),
                ),
                Panel(
                    "Creation to dispatch",
                    qs(
                        q(quantile(0.5, m.OPERATOR_DISPATCH_LATENCY), "p50"),
                        q(quantile(0.95, m.OPERATOR_DISPATCH_LATENCY), "p95"),
                        q(quantile(0.99, m.OPERATOR_DISPATCH_LATENCY), "p99"),
                    ),
                    unit="s",
                ),
                Panel(
                    "Since the last successful sync",
                    qs(q(f"time() - max({sel(m.OPERATOR_LAST_SYNC.series)})", "age")),
                    unit="s",
                    kind="stat",
                    width=6,
                ),
            ),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, TASKS, WORKFLOWS)


# --- Building ------------------------------------------------------------------------


def _variable(name: str, label: str, query: str, *, all_: bool, multi: bool) -> Any:
    var = (
        gdash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(all_)
    )
    if not all_:
        return var
    # "All" selected when the dashboard opens; it matches series without the label too.
    everything = ["$__all"] if multi else "$__all"
    text = ["All"] if multi else "All"
    return var.all_value(".*").current(
        dm.VariableOption(selected=True, text=text, value=everything)
    )


def _panel(panel: Panel, panel_id: int) -> Any:
    builder: Any
    if panel.kind == "stat":
        builder = (
            gstat.Panel()
            .graph_mode(cm.BigValueGraphMode.AREA)
            .reduce_options(gcommon.ReduceDataOptions().calcs(["lastNotNull"]))
            .height(6)
        )
    else:
        builder = (
            gts.Panel()
            .legend(
                gcommon.VizLegendOptions()
                .show_legend(True)
                .display_mode(cm.LegendDisplayMode.LIST)
                .placement(cm.LegendPlacement.BOTTOM)
            )
            .tooltip(gcommon.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI))
            .height(8)
        )
    builder = builder.id(panel_id).title(panel.title).datasource(DATASOURCE).unit(panel.unit)
    builder = builder.span(panel.width)
    if panel.description:
        builder = builder.description(panel.description)
    for index, query in enumerate(panel.queries):
        target = (
            gprom.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
        builder = builder.with_target(target)
    return builder


def build(board: Board) -> dict[str, Any]:
    """The dashboard's JSON model."""
    dash = (
        gdash.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["celery-harder"])
        .editable()
        .timezone("browser")
        .refresh("30s")
        .time("now-1h", "now")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            gdash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        # Clusters and namespaces where a celery-harder API runs: the API serves
        # celery_harder_redis_up on every scrape, Redis up or down.
        .with_variable(
            _variable(
                "cluster",
                "Cluster",
                f"label_values({m.REDIS_UP.series}, cluster)",
                all_=True,
                multi=False,
            )
        )
        .with_variable(
            _variable(
                "namespace",
                "Namespace",
                f'label_values({m.REDIS_UP.series}{{cluster=~"$cluster"}}, namespace)',
                all_=False,
                multi=False,
            )
        )
        .with_variable(
            _variable(
                "job",
                "Job",
                'label_values(up{cluster=~"$cluster", namespace=~"$namespace"}, job)',
                all_=True,
                multi=True,
            )
        )
    )
    for name, label, selector, label_name in board.variables:
        dash = dash.with_variable(
            _variable(name, label, f"label_values({selector}, {label_name})", all_=True, multi=True)
        )
    panel_id = 0
    for row in board.rows:
        panel_id += 1
        dash = dash.with_row(gdash.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            dash = dash.with_panel(_panel(panel, panel_id))
    model: dict[str, Any] = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    return model


def render(board: Board) -> str:
    return json.dumps(build(board), indent=2, sort_keys=True) + "\n"


def dashboard_uids() -> set[str]:
    return {board.uid for board in DASHBOARDS}


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in model["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every panel target, as the JSON holds them."""
    return [
        (board.uid, panel["title"], target["expr"])
        for board in DASHBOARDS
        for panel in _panels(build(board))
        for target in panel.get("targets") or []
    ]


def expand(
    expr: str,
    *,
    cluster: str = ".*",
    namespace: str = ".*",
    job: str = ".*",
    task: str = ".*",
    rate_interval: str = "1m",
) -> str:
    """`expr` with the dashboard variables replaced, as Grafana sends it (the defaults are
    the variables' "All": every value)."""
    values = {
        "__rate_interval": rate_interval,
        "cluster": cluster,
        "namespace": namespace,
        "job": job,
        "task": task,
    }
    out = re.sub(
        r"\$(__rate_interval|cluster|namespace|job|task)\b",
        lambda match: values[match.group(1)],
        expr,
    )
    assert "$" not in out.replace("$1", ""), out
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the JSON files")
    mode.add_argument("--check", action="store_true", help="exit 1 if a file differs")
    args = parser.parse_args(argv)
    wanted = {board.file: render(board) for board in DASHBOARDS}
    present = {p.name for p in OUT_DIR.glob("*.json")}
    if args.write:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for name in present - set(wanted):
            (OUT_DIR / name).unlink()
        for name, text in wanted.items():
            (OUT_DIR / name).write_text(text)
        return 0
    stale = sorted(
        name
        for name in present | set(wanted)
        if name not in wanted or name not in present or (OUT_DIR / name).read_text() != wanted[name]
    )
    for name in stale:
        print(f"{OUT_DIR / name}: out of date; run python -m celery_harder_dev.dashboards --write")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
