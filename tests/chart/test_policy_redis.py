"""Chart policy, Redis and the exporter that reads it."""

import re

import pytest

from .chartlib import HELMS, pod_spec, render_case


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_redis_is_durable_and_never_evicts(helm):
    render = render_case(helm, "defaults")
    sts = render.get("StatefulSet", "celery-harder-redis")
    conf = render.get("ConfigMap", "celery-harder-redis")["data"]["redis.conf"]
    assert re.search(r"^appendonly yes$", conf, re.M)
    assert re.search(r"^maxmemory-policy noeviction$", conf, re.M)
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    (c,) = pod_spec(sts)["containers"]
    assert c["command"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    # Debian bookworm's Redis, so that the image can be built locally from its package.
    assert c["image"] == "redis:7.0.15"


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_exporter_reads_the_broker_with_the_password(helm):
    render = render_case(helm, "defaults")
    exp = render.get("Deployment", "celery-harder-exporter")
    (c,) = pod_spec(exp)["containers"]
    image, tag = c["image"].split(":")
    assert image == "danihodovic/celery-exporter" and re.match(r"^\d+\.\d+\.\d+$", tag)
    env = [e["name"] for e in c["env"]]
    assert env.index("REDIS_PASSWORD") < env.index("CE_BROKER_URL")
    assert "--broker-url=$(CE_BROKER_URL)" in c["args"]
    # loguru would otherwise print the URL, password and all, in every traceback
    # (tests/cluster/test_no_secrets.py caught it on the local node).
    assert {"name": "LOGURU_DIAGNOSE", "value": "NO"} in c["env"]
    assert c["ports"][0]["containerPort"] == 9808
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
