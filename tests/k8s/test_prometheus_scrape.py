"""T1 + T2: a real Prometheus scrapes a real local stack, and every chart query meets it.

Started here, each a real process on loopback: redis-server, a prefork worker, the API
(uvicorn), Flower (`celery flower`), celery-exporter (PyPI prometheus-exporter-celery in
its own venv, the chart's flags), the operator (`kopf run` against the test
kube-apiserver) and Prometheus 2.42 (Debian's) scraping them every second, with the
chart's PrometheusRule loaded. Its scrape jobs are named after the Services the chart's
ServiceMonitors select, labelled with the namespace and cluster a cluster would give.

A known mix runs once for the module: N add tasks, M failing tasks, API workflows
that succeed, fail, are cancelled and time out, two TaskWorkflows through the
operator, and messages planted at priorities 0 and 6 on a queue no worker consumes.
Then everything is read back through Prometheus' HTTP API, and every dashboard panel
query and every rule is checked against it: it parses (Prometheus' own parser), the
metrics it reads are served by a target, and a panel query returns data.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from celery_harder import metric_names as m
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder_dev.chart_monitoring import (
    NAMESPACE,
    dashboard_files,
    render_monitoring,
    rule_spec,
    scrape_targets,
    write_rule_file,
)
from celery_harder_dev.exporter import running_exporter
from celery_harder_dev.local_processes import flower_command, free_port, start_process, stop_process
from celery_harder_dev.polling import ProcessExited
from celery_harder_dev.prometheus import (
    Prometheus,
    running_prometheus,
)
from celery_harder_dev.promql import (
    Expression,
    dashboard_file_expressions,
    dashboard_file_variable_expressions,
    exposition_names,
    metric_names,
    rule_expressions,
    substitute_variables,
)
from celery_harder_dev.queues import queue_keys
from tests.support.operator_process import running_operator
from tests.support.polling import poll_json, wait_until
from tests.support.stack import BIN, RedisServer, StackEnv, running_api, running_worker

pytestmark = pytest.mark.t2

PROM_DB = 8  # a database of its own: the exporter counts this test's events only
CLUSTER = "local"
PARKED = "parked"  # a configured queue that no worker consumes
QUEUES = ("celery", PARKED)
N_ADD, N_FAIL = 6, 3
PLANTED = {0: 3, 6: 2}  # priority -> messages planted on PARKED
# Metrics no catalog task can produce: a panel query may come back empty only when every
# metric it reads is one of these AND has no series at all (checked, not assumed).
CANNOT_OCCUR = {
    "celery_task_retried_total": "no catalog task calls self.retry()",
    "celery_task_rejected_total": "a catalog worker rejects nothing in this mix",
}


@dataclass
class Observed:
    """The stack, the Prometheus scraping it, and what the mix did."""

    prometheus: Prometheus
    jobs: dict[str, str]  # component -> job (the Service name)
    urls: dict[str, str]  # component -> base URL of its /metrics
    redis: Any
    rule_spec: dict[str, Any]
    expected_workflows: dict[str, int] = field(default_factory=dict)


@contextmanager
def running_flower(stack: StackEnv, port: int) -> Iterator[None]:
    """`celery flower` on the worker's app, ready when /healthcheck says OK."""
    log = stack.workdir / "flower.log"
    proc = start_process(flower_command(BIN, port), log=log, env=stack.env("flower"))

    def ready() -> bool:
        if proc.poll() is not None:
            raise ProcessExited(f"flower exited: {log.read_text()[-2000:]}")
        return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).text == "OK"

    try:
        wait_until(ready, 60, what="flower")
        yield
    finally:
        stop_process(proc)


def _run_mix(api_client: httpx.Client, kube_api: Any, namespace: str) -> dict[str, int]:
    """The known mix through the API and the operator; the workflow outcomes it gives."""
    ids = [api_client.post("/add", json={"x": i, "y": 1}).json()["task_id"] for i in range(N_ADD)]
    for i in range(N_FAIL):
        response = api_client.post("/tasks", json={"task": "fail", "kwargs": {"message": f"{i}"}})
        assert response.status_code == 202, response.text
        ids.append(response.json()["task_id"])
    for task_id in ids:
        poll_json(api_client, f"/result/{task_id}", lambda b: b["state"] in ("SUCCESS", "FAILURE"))

    def workflow(body: dict[str, Any]) -> str:
        response = api_client.post("/workflows", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def final(wid: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        body = poll_json(
            api_client,
            f"/workflows/{wid}",
            lambda b: b["phase"] in ("Succeeded", "Failed", "Cancelled"),
            timeout,
        )
        assert body["phase"] == phase, body
        return body

    ok = workflow(
        {"workflow": {"chain": [{"task": "mul", "args": [2, 3]}, {"task": "mul", "args": [4]}]}}
    )
    failing = workflow({"workflow": {"task": "fail", "kwargs": {"message": "workflow"}}})
    cancelled = workflow({"workflow": {"task": "sleep", "args": [30]}})
    timed_out = workflow({"workflow": {"task": "sleep", "args": [30]}, "timeoutSeconds": 1})
    poll_json(api_client, f"/workflows/{cancelled}", lambda b: b["nodes"][0]["phase"] == "Running")
    response = api_client.delete(f"/workflows/{cancelled}", params={"terminate": "true"})
    assert response.status_code == 202, response.text
    final(cancelled, "Cancelled")
    final(failing, "Failed")
    assert final(timed_out, "Failed", timeout=30)["reason"] == "Timeout"
    assert final(ok, "Succeeded")["result"] == 24

    def taskworkflow(name: str, workflow_spec: dict[str, Any]) -> None:
        kube_api.apply(
            {
                "apiVersion": "celery-harder.io/v1alpha1",
                "kind": "TaskWorkflow",
                "metadata": {"name": name},
                "spec": {"workflow": workflow_spec},
            },
            "-n",
            namespace,
        )

    taskworkflow(
        "sums", {"chain": [{"task": "xsum", "args": [[1, 2, 3]]}, {"task": "mul", "args": [2]}]}
    )
    taskworkflow("fails", {"task": "fail", "kwargs": {"message": "operator"}})

    def phase(name: str) -> str | None:
        obj = kube_api.kubectl_json("get", "tw", name, "-n", namespace)
        got = obj.get("status", {}).get("phase")
        return got if got in ("Succeeded", "Failed") else None

    phases = {
        name: wait_until(lambda n=name: phase(n), 90, what=name) for name in ("sums", "fails")
    }
    assert phases == {"sums": "Succeeded", "fails": "Failed"}, phases
    # API: ok, failing, cancelled, timed out; operator: sums, fails.
    return {"succeeded": 2, "failed": 2, "cancelled": 1, "timed_out": 1}


def _plant(redis_server: RedisServer) -> None:
    """Real Celery messages at a priority on PARKED, sent the way any producer sends them."""
    url = redis_server.url(PROM_DB)
    client = create_task_client(Settings(broker_url=url, result_backend=url, queues=QUEUES))
    try:
        for priority, count in PLANTED.items():
            for _ in range(count):
                client.app.send_task("add", args=[1, 1], queue=PARKED, priority=priority)
    finally:
        client.app.close()


@pytest.fixture(scope="module")
def observed(
    kube_api: Any, taskworkflow_crd: Path, redis_server: RedisServer, stack_dir: Path
) -> Iterator[Observed]:
    workdir = stack_dir / "prometheus-scrape"
    workdir.mkdir(exist_ok=True)
    url = redis_server.url(PROM_DB)
    redis_server.client(PROM_DB).flushdb()
    stack = StackEnv(
        broker_url=url, workdir=workdir, extra={"CELERY_HARDER_QUEUES": ",".join(QUEUES)}
    )
    namespace = kube_api.create_namespace(f"prom-{int(time.time())}")
    objects = render_monitoring(namespace=NAMESPACE)
    rules = write_rule_file(objects, workdir / "chart-rules.yaml")
    ports = {c: free_port() for c in ("exporter", "flower")}
    with (
        running_worker(stack, "prom", concurrency=2, queues=["celery"]),
        running_api(stack) as api,
        running_exporter(url, ports["exporter"], QUEUES, workdir / "exporter.log"),
        running_flower(stack, ports["flower"]),
        running_operator(stack, kube_api.env()) as operator,
    ):
        urls = {
            "api": api.url,
            "exporter": f"http://127.0.0.1:{ports['exporter']}",
            "flower": f"http://127.0.0.1:{ports['flower']}",
            "operator": operator.metrics_url.removesuffix("/metrics"),
        }
        targets = scrape_targets(objects, urls, NAMESPACE, CLUSTER)
        jobs = {c: t.job for c, t in zip(urls, targets, strict=True)}
        with running_prometheus(workdir / "prometheus", targets, [rules]) as prometheus:
            prometheus.wait_targets_up([jobs[c] for c in ("api", "exporter", "flower")])
            _plant(redis_server)
            with api.client(timeout=30) as client:
                outcomes = _run_mix(client, kube_api, namespace)
            yield Observed(
                prometheus, jobs, urls, redis_server.client(PROM_DB), rule_spec(objects), outcomes
            )


def settled(prometheus: Prometheus, expr: str, expected: float, timeout: float = 60) -> float:
    """Poll a one-series query until it equals `expected`; the last value in the message."""
    seen: list[float | None] = []

    def equal() -> bool:
        seen.append(prometheus.value(expr))
        return seen[-1] == expected

    try:
        wait_until(equal, timeout, what=expr)
    except TimeoutError:
        raise AssertionError(
            f"{expr} = {seen[-1] if seen else None}, expected {expected}"
        ) from None
    return expected


# --------------------------------------------------------------------------- targets


def test_stack_targets_are_up_with_the_cluster_labels(observed: Observed) -> None:
    jobs = [observed.jobs[c] for c in ("api", "exporter", "flower")]
    observed.prometheus.wait_targets_up(jobs)
    for target in observed.prometheus.targets():
        labels = target["labels"]
        if labels["job"] in jobs:
            assert target["health"] == "up", target
            assert (labels["namespace"], labels["cluster"]) == (NAMESPACE, CLUSTER), labels


def test_operator_target_is_up(observed: Observed) -> None:
    """The operator's own /metrics (its Service and ServiceMonitor in the chart)."""
    job = observed.jobs["operator"]
    try:
        observed.prometheus.wait_targets_up([job], timeout=30)
    except TimeoutError:
        health = [t for t in observed.prometheus.targets() if t["labels"]["job"] == job]
        raise AssertionError(f"operator target not up: {health}") from None


# --------------------------------------------------------------------------- counts


def test_submitted_succeeded_and_failed_equal_the_mix(observed: Observed) -> None:
    p, jobs = observed.prometheus, observed.jobs
    submitted = m.TASKS_SUBMITTED.series
    api = f'job="{jobs["api"]}", namespace="{NAMESPACE}"'
    settled(p, f'sum({submitted}{{{api}, task="add"}})', N_ADD)
    settled(p, f'sum({submitted}{{{api}, task="fail"}})', N_FAIL)
    exporter = f'job="{jobs["exporter"]}", queue_name="celery"'
    settled(p, f'sum({m.EXPORTER_TASK_SUCCEEDED.series}{{{exporter}, name="add"}})', N_ADD)
    # The plain failures, the failing API workflow and the failing TaskWorkflow.
    settled(p, f'sum({m.EXPORTER_TASK_FAILED.series}{{{exporter}, name="fail"}})', N_FAIL + 2)
    settled(p, f'sum({m.EXPORTER_TASK_FAILED.series}{{{exporter}, name="add"}}) or vector(0)', 0)
    up = f'{m.EXPORTER_WORKER_UP.series}{{job="{jobs["exporter"]}"}}'
    settled(p, f"sum({up})", 1)
    # The worker is `prom@<host>`, but celery-exporter labels it with <host> alone (its
    # get_hostname drops everything up to the @): no pool can be read from `hostname`.
    with_pool = f'{m.EXPORTER_WORKER_UP.series}{{job="{jobs["exporter"]}", hostname=~".*@.*"}}'
    assert p.query(with_pool) == []


def test_workflows_submitted_and_finished_by_outcome(observed: Observed) -> None:
    p = observed.prometheus
    settled(p, f'sum({m.WORKFLOWS_SUBMITTED.series}{{job="{observed.jobs["api"]}"}})', 4)
    for outcome in m.OUTCOMES:
        expected = observed.expected_workflows[outcome]
        # Counted once per workflow by whichever process saw it finish: sum API + operator.
        settled(p, f'sum({m.WORKFLOWS_FINISHED.series}{{outcome="{outcome}"}})', expected)
        count = f'{m.WORKFLOW_DURATION.name}_count{{outcome="{outcome}"}}'
        settled(p, f"sum({count})", expected)


def test_queue_depth_with_its_priority_sub_list_equals_llen(observed: Observed) -> None:
    p, redis = observed.prometheus, observed.redis
    keys = queue_keys(PARKED)
    llen = {key: int(redis.llen(key)) for key in keys}
    # The planted messages are where kombu puts them: the list and the priority-6 sibling.
    assert llen[PARKED] == PLANTED[0] and llen[keys[2]] == PLANTED[6], llen
    api = f'job="{observed.jobs["api"]}"'
    settled(p, f'sum({m.QUEUE_WAITING.series}{{{api}, queue="{PARKED}"}})', sum(llen.values()))
    by_priority = m.QUEUE_WAITING_BY_PRIORITY.series
    wait_until(
        lambda: p.query(f'{by_priority}{{{api}, queue="{PARKED}", priority="6"}}'),
        60,
        what="the priority-6 sub-list's series",
    )
    for series in p.query(f'{by_priority}{{{api}, queue="{PARKED}"}}'):
        step = int(series["metric"]["priority"])
        key = PARKED if step == 0 else next(k for k in keys if k.endswith(f"{step}"))
        assert float(series["value"][1]) == llen[key], (series, llen)


def test_the_exporters_queue_length_counts_only_the_priority_0_list(observed: Observed) -> None:
    """celery-exporter#272: what the chart's own queue metric exists to correct."""
    p, redis = observed.prometheus, observed.redis
    expr = f'{m.Metric("celery_queue_length", "gauge", "").series}{{queue_name="{PARKED}"}}'
    settled(p, f"sum({expr})", int(redis.llen(PARKED)))
    assert sum(int(redis.llen(k)) for k in queue_keys(PARKED)) > int(redis.llen(PARKED))


# --------------------------------------------------------------------------- chart queries


def grafana_values(observed: Observed) -> dict[str, str]:
    """What a user's Grafana would put in for the dashboards' variables, here."""
    return {
        "datasource": "prometheus",
        "DS_PROMETHEUS": "prometheus",
        "cluster": CLUSTER,
        "namespace": NAMESPACE,
        "job": "|".join(sorted(observed.jobs.values())),
        "queue": ".*",
        "pool": ".*",
        "task": ".*",
        "name": ".*",
        "__rate_interval": "1m",
        "__interval": "5s",
        "__interval_ms": "5000",
        "__range": "10m",
        "__range_s": "600",
    }


def dashboard_queries(observed: Observed) -> list[Expression]:
    values = grafana_values(observed)
    found = dashboard_file_expressions(dashboard_files())
    assert found, "no dashboard panel queries found"
    return [Expression(e.source, e.where, substitute_variables(e.expr, values)) for e in found]


def variable_queries(observed: Observed) -> list[Expression]:
    """The selectors of the dashboards' query variables (label_values(<selector>, ...))."""
    values = grafana_values(observed)
    return [
        Expression(e.source, e.where, substitute_variables(e.expr, values))
        for e in dashboard_file_variable_expressions(dashboard_files())
    ]


def chart_rules(observed: Observed) -> list[Expression]:
    found = rule_expressions(observed.rule_spec, "PrometheusRule")
    assert found, "no rules rendered"
    return found


def served_names(observed: Observed) -> set[str]:
    """Every metric name a target serves (its /metrics text) or Prometheus holds."""
    names = set(observed.prometheus.metric_names())
    for url in observed.urls.values():
        try:
            response = httpx.get(url + "/metrics", timeout=10)
        except httpx.HTTPError:
            continue  # a target that serves nothing serves no names (its own test fails)
        if response.status_code == 200:
            names |= exposition_names(response.text)
    return names


def test_every_dashboard_query_and_rule_parses(observed: Observed) -> None:
    assert "bad_data" not in str(observed.prometheus.parse_error("sum(up)"))
    assert "unexpected" in str(observed.prometheus.parse_error("sum(up{job=})"))  # the control
    errors = [
        f"{e}: {error}"
        for e in [*dashboard_queries(observed), *variable_queries(observed), *chart_rules(observed)]
        if (error := observed.prometheus.parse_error(e.expr))
    ]
    assert errors == [], "\n".join(errors)


def test_every_metric_a_query_or_rule_reads_is_served(observed: Observed) -> None:
    served = served_names(observed)
    assert metric_names("rate(celery_task_succeeded_totl[1m])") - served  # a typo is caught
    missing = [
        f"{e}: {sorted(names)}"
        for e in [*dashboard_queries(observed), *variable_queries(observed), *chart_rules(observed)]
        if (names := metric_names(e.expr) - served)
    ]
    assert missing == [], "metrics no target serves:\n" + "\n".join(missing)


def test_every_dashboard_query_returns_data_after_the_mix(observed: Observed) -> None:
    p = observed.prometheus
    present = p.metric_names()
    assert p.query(f'up{{namespace="{NAMESPACE}"}}')
    assert not p.query('up{namespace="a-typo"}')  # a wrong label value gives no data
    empty = []
    for e in dashboard_queries(observed):
        names = metric_names(e.expr)
        if names and all(n in CANNOT_OCCUR and n not in present for n in names):
            continue  # documented in CANNOT_OCCUR, and indeed without a single series
        try:
            wait_until(lambda e=e: p.query(e.expr), 15, what=str(e))
        except TimeoutError:
            empty.append(str(e))
    for e in variable_queries(observed):
        if not p.query(e.expr):
            empty.append(str(e))  # no values: every panel that filters on it is empty
    assert empty == [], "panel queries with no data:\n" + "\n".join(empty)


def test_chart_rules_are_loaded_and_evaluate_without_errors(observed: Observed) -> None:
    p = observed.prometheus
    expected = {e.where.split(" ", 1)[1] for e in chart_rules(observed)}

    def evaluated() -> list[dict[str, Any]]:
        rules = [r for g in p.rule_groups() for r in g["rules"]]
        done = [r for r in rules if not r["lastEvaluation"].startswith("0001-")]
        return rules if len(done) == len(rules) == len(expected) else []

    rules = wait_until(evaluated, 30, what="every rule evaluated once")
    assert {r["name"] for r in rules} == expected
    unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert unhealthy == []
