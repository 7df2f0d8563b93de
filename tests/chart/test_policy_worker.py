"""Chart policy, the worker Deployment: its arguments, grace period and PodDisruptionBudget."""

import pytest

from .chartlib import HELMS, pod_labels, pod_spec, render_case, render_sets
from .policylib import (
    CASES,
    _case_values,
    _config,
    _pool_queues,
    _pool_values,
    _pools,
    _worker,
    _worker_command,
)


@pytest.mark.parametrize("helm,case", CASES)
def test_worker_command_and_queue(helm, case):
    render = render_case(helm, case)
    cmd = _worker_command(render)
    concurrency = _case_values(case).get("worker", {}).get("concurrency", 2)
    assert cmd[:3] == [f"--concurrency={concurrency}", "-Q", "celery"]
    queue = cmd[cmd.index("-Q") + 1]
    assert queue == _config(render)["CELERY_HARDER_QUEUE"] == "celery"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        exec_cmd = pod_spec(_worker(render))["containers"][0][probe]["exec"]["command"]
        assert exec_cmd[:3] == ["python", "-m", "background.probe"], exec_cmd
        assert "inspect" not in exec_cmd
        # Only liveness tolerates a worker that is retrying its broker.
        assert ("--live" in exec_cmd) == (probe == "livenessProbe"), exec_cmd


@pytest.mark.parametrize("helm,case", CASES)
def test_grace_period_covers_hard_limit_plus_soft_shutdown(helm, case):
    render = render_case(helm, case)
    cfg = _config(render)
    grace = pod_spec(_worker(render))["terminationGracePeriodSeconds"]
    hard = int(cfg["CELERY_HARDER_TASK_TIME_LIMIT"])
    soft_shutdown = int(cfg["CELERY_HARDER_SOFT_SHUTDOWN_TIMEOUT"])
    assert grace >= hard + soft_shutdown
    assert int(cfg["CELERY_HARDER_VISIBILITY_TIMEOUT"]) > hard + soft_shutdown
    assert int(cfg["CELERY_HARDER_TASK_SOFT_TIME_LIMIT"]) < hard


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_grace_period_follows_the_time_limits(helm):
    render = render_sets(
        helm,
        (
            "celery.taskTimeLimit=1200",
            "celery.taskSoftTimeLimit=1100",
            "celery.softShutdownTimeout=60",
        ),
    )
    assert pod_spec(_worker(render))["terminationGracePeriodSeconds"] == 1200 + 60 + 30
    render = render_sets(helm, ("worker.terminationGracePeriodSeconds=900",))
    assert pod_spec(_worker(render))["terminationGracePeriodSeconds"] == 900


@pytest.mark.parametrize("helm,case", CASES)
def test_pdb_never_blocks_all_evictions(helm, case):
    """One budget per pool, each selecting its own pool's pods only (two budgets on one
    pod make every eviction of it fail)."""
    render = render_case(helm, case)
    pools = _pools(render)
    budgets = render.of_kind("PodDisruptionBudget")
    assert len(budgets) == len(pools)
    for pdb in budgets:
        spec = pdb["spec"]
        assert "minAvailable" not in spec
        max_unavailable = spec["maxUnavailable"]
        if isinstance(max_unavailable, str):
            assert max_unavailable.endswith("%") and int(max_unavailable[:-1]) > 0
        else:
            assert max_unavailable >= 1
        selector = spec["selector"]["matchLabels"].items()
        selected = [p for p, d in pools.items() if selector <= pod_labels(d).items()]
        assert selected == [pdb["metadata"]["labels"]["celery-harder.io/pool"]], selected


@pytest.mark.parametrize("helm,case", CASES)
def test_every_pool_consumes_its_queues_and_the_config_knows_them_all(helm, case):
    """-Q per pool, the pool's name in the hostname, and CELERY_HARDER_QUEUES = every queue."""
    render = render_case(helm, case)
    pools = _pools(render)
    assert "default" in pools and pools["default"]["metadata"]["name"] == "celery-harder-worker"
    every = []
    for pool, deployment in pools.items():
        values = _pool_values(case, pool)
        (container,) = pod_spec(deployment)["containers"]
        expected = values.get("queues", ["celery"])
        assert _pool_queues(deployment) == expected
        assert f"--concurrency={values.get('concurrency', 2)}" in container["args"]
        assert f"--hostname={pool}@%h" in container["args"]
        if pool != "default":
            assert deployment["metadata"]["name"] == f"celery-harder-worker-{pool}"
        assert pod_labels(deployment)["celery-harder.io/redis-client"] == "true"
        every += expected
    assert _config(render)["CELERY_HARDER_QUEUES"].split(",") == every
    # celery-exporter 0.11 takes one --queues option and splits it on commas.
    (exporter,) = pod_spec(render.get("Deployment", "celery-harder-exporter"))["containers"]
    env = {e["name"]: e.get("value") for e in exporter["env"]}
    assert [a for a in exporter["args"] if a.startswith("--queues")] == ["--queues=$(CE_QUEUES)"]
    assert env["CE_QUEUES"].split(",") == every
