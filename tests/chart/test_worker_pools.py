"""Chart: worker pools. The rules a rendering enforces, and what the pools share."""

import pytest

from celery_harder.settings import Settings

from .chartlib import HELMS, render_case, render_fails, render_sets
from .policylib import _config, _pools, pod_spec

HELM_LIST = sorted(HELMS)


@pytest.mark.parametrize("helm", HELM_LIST)
def test_a_queue_belongs_to_one_pool(helm):
    err = render_fails(helm, "workers[0].name=cpu", "workers[0].queues={celery}")
    assert 'queue "celery" is consumed by pools default and cpu' in err, err


@pytest.mark.parametrize("helm", HELM_LIST)
def test_the_default_name_is_the_default_pools(helm):
    err = render_fails(helm, "workers[0].name=default", "workers[0].queues={cpu}")
    assert "the name `default` is the pool of `worker.*`" in err, err


@pytest.mark.parametrize("helm", HELM_LIST)
def test_each_pools_grace_period_is_checked(helm):
    err = render_fails(
        helm,
        "workers[0].name=cpu",
        "workers[0].queues={cpu}",
        "workers[0].terminationGracePeriodSeconds=100",
    )
    assert "workers[cpu].terminationGracePeriodSeconds (100) must be at least" in err, err


@pytest.mark.parametrize("helm", HELM_LIST)
@pytest.mark.parametrize("sets", [("workers[0].name=Cpu",), ("workers[0].name=cpu",)])
def test_a_pool_needs_a_dns_name_and_queues(helm, sets):
    err = render_fails(helm, *sets)
    assert "workers" in err, err


@pytest.mark.parametrize("helm", HELM_LIST)
def test_the_api_and_operator_read_the_chart_queues(helm):
    """CELERY_HARDER_QUEUES as rendered parses to the same list in the services' settings."""
    render = render_case(helm, "pools")
    config = _config(render)
    settings = Settings(queue=config["CELERY_HARDER_QUEUE"], queues=config["CELERY_HARDER_QUEUES"])
    assert settings.known_queues == ("celery", "cpu", "reports", "io")
    assert sorted(_pools(render)) == ["cpu", "default", "io"]


@pytest.mark.parametrize("helm", HELM_LIST)
def test_every_pool_shares_one_trigger_authentication(helm):
    render = render_case(helm, "pools")
    (ta,) = render.of_kind("TriggerAuthentication")
    refs = {
        t["authenticationRef"]["name"]
        for so in render.of_kind("ScaledObject")
        for t in so["spec"]["triggers"]
    }
    assert refs == {ta["metadata"]["name"]}
    assert len(render.of_kind("ScaledObject")) == 2  # io has KEDA off


@pytest.mark.parametrize("helm", HELM_LIST)
@pytest.mark.parametrize(("extra", "target"), [((), "2"), (("workers[0].concurrency=3",), "3")])
def test_a_pools_target_defaults_to_its_concurrency(helm, extra, target):
    """No keda.targetPerReplica: the pool's concurrency, else worker.concurrency (never 0,
    which KEDA refuses: the T4-local pools test found a pool rendered with "0")."""
    sets = ("workers[0].name=cpu", "workers[0].queues[0]=cpu", *extra)
    render = render_sets(helm, sets)
    so = render.get("ScaledObject", "celery-harder-worker-cpu")
    assert so["spec"]["advanced"]["scalingModifiers"]["target"] == target


def _worker_env(render, name):
    (container,) = pod_spec(render.get("Deployment", name))["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("helm", HELM_LIST)
def test_a_pool_can_take_the_fast_profile(helm):
    """`workers[].profile: fast` reaches that pool's workers alone, as the env the worker's
    settings read; the default pool keeps the default profile."""
    sets = (
        "workers[0].name=quick",
        "workers[0].queues[0]=quick",
        "workers[0].profile=fast",
        "workers[0].fastPrefetchMultiplier=32",
    )
    render = render_sets(helm, sets)
    fast = _worker_env(render, "celery-harder-worker-quick")
    default = _worker_env(render, "celery-harder-worker")
    assert fast["CELERY_HARDER_WORKER_PROFILE"] == "fast"
    assert default["CELERY_HARDER_WORKER_PROFILE"] == "default"
    settings = Settings(
        worker_profile=fast["CELERY_HARDER_WORKER_PROFILE"],
        fast_prefetch_multiplier=fast["CELERY_HARDER_FAST_PREFETCH_MULTIPLIER"],
    )
    assert (settings.worker_profile, settings.fast_prefetch_multiplier) == ("fast", 32)
    assert default["CELERY_HARDER_FAST_PREFETCH_MULTIPLIER"] == "16"


@pytest.mark.parametrize("helm", HELM_LIST)
def test_an_unknown_profile_is_refused(helm):
    err = render_fails(helm, "workers[0].name=quick", "workers[0].queues={quick}",
                       "workers[0].profile=turbo")  # fmt: skip
    assert "profile" in err, err
