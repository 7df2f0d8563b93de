"""Chart policy, the ScaledObject: the queue keys, their priority sub-lists, work in flight."""

import re

import pytest

from celery_harder_dev.queues import queue_keys

from .chartlib import HELMS, pod_spec, render_case, render_sets
from .policylib import (
    CASES,
    SEP,
    _case_values,
    _config,
    _pool_queues,
    _pool_values,
    _pools,
    _worker_command,
    worker_broker_db,
    worker_broker_host,
)


@pytest.mark.parametrize("helm,case", CASES)
def test_scaledobject_counts_the_queue_its_priority_lists_and_work_in_flight(helm, case):
    render = render_case(helm, case)
    scaled = {so["metadata"]["name"]: so for so in render.of_kind("ScaledObject")}
    assert len(render.of_kind("Deployment")) > len(_pools(render)) >= 1
    for pool, deployment in _pools(render).items():
        values = _pool_values(case, pool)
        keda = values["keda"]
        name = deployment["metadata"]["name"]
        if not keda.get("enabled", True):
            assert deployment["spec"]["replicas"] == values.get("replicaCount", 1), pool
            assert name not in scaled, f"pool {pool} has KEDA off but a ScaledObject"
            continue
        assert "replicas" not in deployment["spec"], "KEDA on: the Deployment must not set replicas"
        so = scaled.pop(name)
        triggers = so["spec"]["triggers"]
        names = [t["metadata"]["listName"] for t in triggers]
        # waiting: each queue and its priority lists; in flight: kombu's `unacked` hash
        waiting = [key for queue in _pool_queues(deployment) for key in queue_keys(queue)]
        # Each pool's workers keep their in-flight messages in a hash of their own.
        (container,) = pod_spec(deployment)["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        own = "unacked" if pool == "default" else f"unacked-{pool}"
        assert env["CELERY_HARDER_UNACKED_KEY"] == own, pool
        in_flight = [own] if keda.get("countInFlight", True) else []
        assert names == waiting + in_flight, pool
        assert so["spec"]["scaleTargetRef"]["name"] == name
        assert so["metadata"]["labels"]["celery-harder.io/pool"] == pool
        # the formula sums every trigger, by name
        formula = so["spec"]["advanced"]["scalingModifiers"]["formula"]
        assert sorted(re.findall(r"\w+", formula)) == sorted(t["name"] for t in triggers)
        assert set(re.sub(r"\w+", "", formula).replace(" ", "")) == {"+"}
        assert so["spec"]["minReplicaCount"] == keda.get("minReplicaCount", 1)
        assert so["spec"]["maxReplicaCount"] == keda.get("maxReplicaCount", 10)
        target = str(keda.get("targetPerReplica") or values.get("concurrency", 2))
        assert so["spec"]["advanced"]["scalingModifiers"]["target"] == target
        _check_triggers_authenticate(render, case, deployment, triggers)
    assert scaled == {}, f"ScaledObjects without a pool: {sorted(scaled)}"


def _check_triggers_authenticate(render, case, worker, triggers):
    # every trigger authenticates through the TriggerAuthentication that reads the pods' Redis Secret  # noqa: E501
    (ta,) = render.of_kind("TriggerAuthentication")
    refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
    redis_env = next(
        e for e in pod_spec(worker)["containers"][0]["env"] if e["name"] == "REDIS_PASSWORD"
    )
    ref = refs.pop("password")
    assert {"name": ref["name"], "key": ref["key"]} == redis_env["valueFrom"]["secretKeyRef"]
    external = _case_values(case).get("externalRedis", {})
    tls = external.get("tls", {})
    if tls.get("enabled"):
        # KEDA verifies the server with the same CA bundle the pods mount.
        ca = refs.pop("ca")
        assert {"name": ca["name"], "key": ca["key"]} == {
            "name": tls["caSecret"],
            "key": tls["caSecretKey"],
        }
    assert refs == {}, refs
    for t in triggers:
        assert t["type"] == "redis"
        assert t["authenticationRef"]["name"] == ta["metadata"]["name"]
        host = worker_broker_host(worker)
        assert t["metadata"]["address"] == host
        assert t["metadata"]["databaseIndex"] == worker_broker_db(worker)
        assert "password" not in t["metadata"] and "passwordFromEnv" not in t["metadata"]
        assert t["metadata"].get("enableTLS") == ("true" if tls.get("enabled") else None)
        assert t["metadata"].get("username") == (external.get("username") or None)


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_priority_list_names_are_escaped_control_characters_in_the_bytes(helm):
    render = render_case(helm, "defaults")
    # The rendered YAML carries the separator as escapes, never raw control bytes...
    assert "\x06" not in render.text and "\x16" not in render.text
    for step in (3, 6, 9):
        assert f'listName: "celery\\u0006\\u0016{step}"' in render.text
    # ...and they decode to exactly the key kombu writes: b"celery\x06\x163".
    (so,) = render.of_kind("ScaledObject")
    assert [t["metadata"]["listName"].encode() for t in so["spec"]["triggers"]][1:4] == [
        b"celery\x06\x163",
        b"celery\x06\x166",
        b"celery\x06\x169",
    ]


@pytest.mark.parametrize("helm", sorted(HELMS))
@pytest.mark.parametrize("queue", ["celery", "documents"])
def test_the_chart_names_the_queue_keys_as_kombu_does(helm, queue):
    """The chart's celery-harder.queueKeys and kombu's own constants give the same keys."""
    render = render_sets(helm, (f"celery.queue={queue}",))
    (so,) = render.of_kind("ScaledObject")
    waiting = [t["metadata"]["listName"] for t in so["spec"]["triggers"] if t["name"] != "unacked"]
    assert waiting == queue_keys(queue)


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_custom_queue_flows_to_worker_keda_exporter_and_config(helm):
    render = render_sets(helm, ("celery.queue=documents",))
    cmd = _worker_command(render)
    assert cmd[cmd.index("-Q") + 1] == "documents"
    assert _config(render)["CELERY_HARDER_QUEUE"] == "documents"
    (so,) = render.of_kind("ScaledObject")
    assert [t["metadata"]["listName"] for t in so["spec"]["triggers"]] == [
        "documents",
        f"documents{SEP}3",
        f"documents{SEP}6",
        f"documents{SEP}9",
        "unacked",  # kombu's in-flight hash does not depend on the queue name
    ]
    exporter = render.get("Deployment", "celery-harder-exporter")
    env = {e["name"]: e.get("value") for e in pod_spec(exporter)["containers"][0]["env"]}
    assert env["CE_QUEUES"] == "documents"
