"""The chart's alert rules, rendered, checked and unit-tested with promtool.

promtool comes from Debian's `prometheus` package, installed by
scripts/install-test-deps.sh; without it these tests fail and say so.
"""

import shutil
import subprocess

import pytest
import yaml

from .chartlib import NAMESPACE, render_sets

PROMTOOL = shutil.which("promtool")

NS = NAMESPACE


def _rules(tmp_path, *sets):
    render = render_sets("helm4", ("monitoring.enabled=true", *sets))
    (rule,) = render.of_kind("PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def _promtool(*args):
    if PROMTOOL is None:
        pytest.fail("promtool not installed: run scripts/install-test-deps.sh")
    proc = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_rendered_rules_pass_promtool_check(tmp_path):
    out = _promtool("check", "rules", str(_rules(tmp_path)))
    assert "SUCCESS: 3 rules found" in out, out
    out = _promtool("check", "rules", str(_rules(tmp_path, "monitoring.rules.workerDown=false")))
    assert "SUCCESS: 2 rules found" in out, out


def _fail_desc(task, queue="celery", pct=5):
    return f"More than {pct}% of {task} tasks failed in the last 10 minutes (queue {queue})."


def test_alerts_fire_on_the_mixin_thresholds(tmp_path):
    rules = _rules(tmp_path)
    lab = f'namespace="{NS}",queue_name="celery"'
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # add: 1 failure per 9 successes = 10 % -> fires
                    {
                        "series": f'celery_task_failed_total{{{lab},name="add",hostname="w1",exception="E"}}',  # noqa: E501
                        "values": "0+1x40",
                    },
                    {
                        "series": f'celery_task_succeeded_total{{{lab},name="add",hostname="w1"}}',
                        "values": "0+9x40",
                    },
                    # mul: 1 failure per 99 successes = 1 % -> quiet
                    {
                        "series": f'celery_task_failed_total{{{lab},name="mul",hostname="w1",exception="E"}}',  # noqa: E501
                        "values": "0+1x40",
                    },
                    {
                        "series": f'celery_task_succeeded_total{{{lab},name="mul",hostname="w1"}}',
                        "values": "0+99x40",
                    },
                    # fail: only failures, no succeeded series at all -> 100 %, fires
                    {
                        "series": f'celery_task_failed_total{{{lab},name="fail",hostname="w1",exception="E"}}',  # noqa: E501
                        "values": "0+2x40",
                    },
                    # another namespace's tasks are not ours
                    {
                        "series": 'celery_task_failed_total{namespace="other",queue_name="celery",name="add",hostname="w9",exception="E"}',  # noqa: E501
                        "values": "0+5x40",
                    },
                    # queue length: 150 for the whole window, a quiet queue at 50
                    {
                        "series": f'celery_queue_length{{namespace="{NS}",queue_name="celery"}}',
                        "values": "150x40",
                    },
                    {
                        "series": f'celery_queue_length{{namespace="{NS}",queue_name="quiet"}}',
                        "values": "50x40",
                    },
                    # one worker down for good, one up
                    {
                        "series": f'celery_worker_up{{namespace="{NS}",hostname="default@a"}}',
                        "values": "0x40",
                    },
                    {
                        "series": f'celery_worker_up{{namespace="{NS}",hostname="cpu@b"}}',
                        "values": "1x40",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "CeleryTaskHighFailRate",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": NS,
                                    "queue_name": "celery",
                                    "name": "add",
                                },
                                "exp_annotations": {
                                    "summary": "Celery task failure rate is high.",
                                    "description": _fail_desc("add"),
                                },
                            },
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": NS,
                                    "queue_name": "celery",
                                    "name": "fail",
                                },
                                "exp_annotations": {
                                    "summary": "Celery task failure rate is high.",
                                    "description": _fail_desc("fail"),
                                },
                            },
                        ],
                    },
                    # 150 messages for 19 minutes: not yet
                    {"eval_time": "19m", "alertname": "CeleryHighQueueLength", "exp_alerts": []},
                    {
                        "eval_time": "25m",
                        "alertname": "CeleryHighQueueLength",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": NS,
                                    "queue_name": "celery",
                                },
                                "exp_annotations": {
                                    "summary": "Celery queue is backing up.",
                                    "description": "More than 100 messages have waited in queue celery for 20 minutes.",  # noqa: E501
                                },
                            },
                        ],
                    },
                    {"eval_time": "14m", "alertname": "CeleryWorkerDown", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "CeleryWorkerDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": NS,
                                    "hostname": "default@a",
                                    "pool": "default",
                                },
                                "exp_annotations": {
                                    "summary": "A Celery worker is down.",
                                    "description": "Celery worker default@a of pool default has been down for 15 minutes.",  # noqa: E501
                                },
                            },
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    out = _promtool("test", "rules", str(path))
    assert "SUCCESS" in out, out


def test_thresholds_follow_values(tmp_path):
    rules = yaml.safe_load(
        _rules(
            tmp_path, "monitoring.rules.failureRatePercent=20", "monitoring.rules.queueLength=1000"
        ).read_text()
    )
    exprs = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert exprs["CeleryTaskHighFailRate"].rstrip().endswith("> 20")
    assert exprs["CeleryHighQueueLength"].rstrip().endswith("> 1000")
