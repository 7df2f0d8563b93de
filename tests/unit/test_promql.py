"""T0: the PromQL tokenizer that names the metrics a dashboard query or rule reads."""

import json

import pytest

from celery_harder_dev.promql import (
    Expression,
    PromQLSyntaxError,
    dashboard_expressions,
    dashboard_file_expressions,
    exposition_names,
    metric_names,
    rule_expressions,
    substitute_variables,
    variable_expressions,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('celery_worker_up{namespace="x"} == 0', {"celery_worker_up"}),
        # label values, label names and regexes are never metric names
        ('foo{job=~"bar|baz", instance!="rate(x)"}', {"foo"}),
        ('{__name__="via_matcher", job="j"}', {"via_matcher"}),
        # functions, aggregations, grouping label lists, ranges and durations
        (
            "histogram_quantile(0.95, sum by (le, name) (rate(task_runtime_bucket[5m])))",
            {"task_runtime_bucket"},
        ),
        (
            "sum without (hostname, pod) (a_total) / on (queue) group_left (name) b",
            {"a_total", "b"},
        ),
        ("sum(a) by (le) > bool 3", {"a"}),
        ("increase(a_total[1h:5m] offset 30m) and b unless c or d", {"a_total", "b", "c", "d"}),
        ("max_over_time(a[10m]) @ end()", {"a"}),
        ("1e3 * a + 0x1f - .5 + Inf + NaN", {"a"}),
        ("count(count by (x) (a))", {"a"}),
        ("topk(5, a) or vector(0)", {"a"}),
        # strings: label_replace's arguments name labels, not metrics
        ('label_replace(a, "pool", "$1", "hostname", "([^@]+)@.*")', {"a"}),
        ("absent(a{job='x'})", {"a"}),
        ("a and `raw {string}`", {"a"}),
        # recording-rule style names with colons
        ("job:requests:rate5m > 1", {"job:requests:rate5m"}),
        # comments inside a rule's multi-line expr
        ("a\n  # b is not read\n  / c", {"a", "c"}),
        ('sum(rate(x{le="+Inf"}[$__rate_interval]))', {"x"}),
        ("time() - a", {"a"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ['a{job="x}', "rate(a[5m)", "'abc"])
def test_unterminated_is_an_error(expr: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        metric_names(expr)


def test_substitute_variables() -> None:
    values = {"namespace": "ns", "job": "j", "__rate_interval": "1m", "datasource": "p"}
    out = substitute_variables(
        'rate(a{namespace="$namespace", job=~"${job:regex}"}[$__rate_interval]) '
        'and label_replace(b, "x", "$1", "y", "(.*)") [[namespace]]',
        values,
    )
    assert out == (
        'rate(a{namespace="ns", job=~"j"}[1m]) and label_replace(b, "x", "$1", "y", "(.*)") ns'
    )
    with pytest.raises(KeyError, match=r"\$cluster"):
        substitute_variables('a{cluster="$cluster"}', values)


DASHBOARD = {
    "panels": [
        {"id": 1, "title": "A", "targets": [{"refId": "A", "expr": "a"}, {"refId": "B"}]},
        {
            "id": 2,
            "type": "row",
            "title": "row",
            "panels": [{"id": 3, "title": "C", "targets": [{"refId": "A", "expr": "c"}]}],
        },
        {"id": 4, "title": "text", "type": "text"},
    ],
    "rows": [{"panels": [{"id": 5, "title": "old", "targets": [{"refId": "X", "expr": "e"}]}]}],
}


def test_dashboard_expressions_walk_rows_and_nested_panels(tmp_path) -> None:
    found = dashboard_expressions(DASHBOARD, "d")
    assert [(e.where, e.expr) for e in found] == [
        ('panel 1 "A" (A)', "a"),
        ('panel 3 "C" (A)', "c"),
        ('panel 5 "old" (X)', "e"),
    ]
    (tmp_path / "x.json").write_text(json.dumps(DASHBOARD))
    assert dashboard_file_expressions(tmp_path.glob("*.json"))[0] == Expression(
        "dashboard x.json", 'panel 1 "A" (A)', "a"
    )


def test_rule_expressions() -> None:
    spec = {
        "groups": [
            {
                "name": "g",
                "rules": [{"alert": "A", "expr": "a > 1"}, {"record": "r:x", "expr": "x"}],
            }
        ]
    }
    assert [(e.source, e.where, e.expr) for e in rule_expressions(spec, "rules")] == [
        ("rules g", "alert A", "a > 1"),
        ("rules g", "record r:x", "x"),
    ]


def test_exposition_names_include_declared_series_without_samples() -> None:
    text = "\n".join([
        "# HELP celery_task_retried_total Sent if the task failed.",
        "# TYPE celery_task_retried_total counter",
        "# HELP http_requests_total Total.",
        "# TYPE http_requests counter",
        'http_requests_total{handler="/add"} 3.0',
        "# TYPE celery_task_runtime histogram",
        'celery_task_runtime_bucket{le="0.5"} 1.0',
        "up_like 1",
    ])  # fmt: skip
    names = exposition_names(text)
    assert {
        "celery_task_retried_total",
        "http_requests_total",
        "celery_task_runtime_bucket",
        "celery_task_runtime_count",
        "up_like",
    } <= names
    assert "HELP" not in names and "Total" not in names


def test_variable_expressions_take_the_selector_of_label_values() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "cluster", "type": "query", "query": "label_values(up, cluster)"},
                {
                    "name": "ns",
                    "type": "query",
                    "query": {
                        "query": 'label_values(celery_worker_up{cluster=~"$cluster"}, namespace)'
                    },
                },
                {"name": "r", "type": "query", "query": "query_result(topk(3, a))"},
                {"name": "all", "type": "query", "query": "label_values(job)"},
                {"name": "c", "type": "custom", "query": "a,b"},
            ]
        }
    }
    assert [(e.where, e.expr) for e in variable_expressions(dashboard, "d")] == [
        ("variable $cluster", "up"),
        ("variable $ns", 'celery_worker_up{cluster=~"$cluster"}'),
        ("variable $r", "topk(3, a)"),
    ]
