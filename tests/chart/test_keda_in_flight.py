"""KEDA sizes the workers on the work waiting and the work in flight.

The ScaledObject sums one redis trigger per queue list (the queue and its priority
sub-lists) and one on kombu's `unacked` hash, and the HPA sizes the workers as
ceil(sum / target). The chain is checked end to end where it can be on this machine:

- KEDA's own redis scaler (v2.21.0, from the Go module cache) reads a key by its TYPE,
  LLEN for a list, HLEN for a hash, 0 for a missing key: its Lua script is taken from
  the module source and run (EVAL) on a real redis-server (T1), against the key names
  the chart renders, after real Celery/kombu calls put messages there;
- the rendered formula, target and activation follow the values.
"""

import math
import re
import tempfile
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection

from tests.support.stack import running_redis

from .chartlib import HELMS, render_fails, render_sets
from .test_render_validate import _find_crd

HELM_LIST = sorted(HELMS)
KEDA_SCALER = "github.com/kedacore/keda/v2@v2.21.0/pkg/scalers/redis_scaler.go"


def _keda_lua():
    path = _find_crd(KEDA_SCALER)
    if path is None:
        pytest.fail(f"{KEDA_SCALER} not in a Go module cache: run scripts/install-test-deps.sh")
    match = re.search(r"luaScript := `(.*?)`", path.read_text(), re.S)
    assert match, f"no luaScript in {path}: KEDA's redis scaler changed, re-check the chart"
    return match.group(1)


def _scaledobject(helm, *sets):
    (so,) = render_sets(helm, tuple(sets)).of_kind("ScaledObject")
    return so


def test_keda_redis_scaler_counts_a_hash_with_hlen_and_a_missing_key_as_zero():
    lua = " ".join(_keda_lua().split())
    assert "local listType = redis.call('type', listName).ok" in lua
    assert "elseif listType == 'hash' then return redis.call('hlen', listName)" in lua
    assert (
        "elseif listType == 'list' or listType == 'none' then return redis.call('llen', listName)"
        in lua
    )


def test_rendered_triggers_count_waiting_and_in_flight_messages_on_a_real_redis():
    """Real Celery publishes, kombu takes one message without acking it, KEDA's Lua counts."""
    lua = _keda_lua()
    so = _scaledobject("helm4")
    modifiers = so["spec"]["advanced"]["scalingModifiers"]
    keys = {t["name"]: t["metadata"]["listName"] for t in so["spec"]["triggers"]}
    db = int(so["spec"]["triggers"][0]["metadata"]["databaseIndex"])
    with running_redis(Path(tempfile.mkdtemp(prefix="keda-in-flight-"))) as server:
        client = server.client(db)

        def desired():
            counts = {name: int(client.eval(lua, 1, key)) for name, key in keys.items()}
            # the formula is a plain sum of trigger names (checked in test_policy)
            total = sum(counts[name] for name in modifiers["formula"].split(" + "))
            return counts, math.ceil(total / float(modifiers["target"]))

        counts, replicas = desired()
        assert set(counts.values()) == {0} and replicas == 0, "missing keys must read as 0"

        app = Celery("keda-in-flight", broker=server.url(db))
        for priority in (0, 0, 0, 9):
            app.send_task("add", args=(2, 3), queue="celery", priority=priority)
        with Connection(server.url(db)) as conn:
            message = conn.default_channel.basic_get("celery", no_ack=False)
            assert message is not None
            counts, replicas = desired()
            # 2 waiting in `celery`, 1 in the priority-9 list, 1 taken and not acked
            assert counts == {"q0": 2, "q1": 0, "q2": 0, "q3": 1, "unacked": 1}, counts
            assert client.type("unacked") == b"hash"
            assert replicas == math.ceil(4 / 2) == 2
            message.ack()
        counts, replicas = desired()
        assert counts["unacked"] == 0 and replicas == math.ceil(3 / 2)


@pytest.mark.parametrize("helm", HELM_LIST)
def test_target_per_replica_defaults_to_worker_concurrency(helm):
    so = _scaledobject(helm)
    modifiers = so["spec"]["advanced"]["scalingModifiers"]
    assert modifiers["formula"] == "q0 + q1 + q2 + q3 + unacked"
    assert modifiers["target"] == "2" and modifiers["metricType"] == "AverageValue"
    assert modifiers["activationTarget"] == "0"
    unacked = so["spec"]["triggers"][-1]
    assert unacked["name"] == "unacked" and unacked["metadata"]["listName"] == "unacked"
    assert {t["metadata"]["listLength"] for t in so["spec"]["triggers"]} == {"2"}
    assert (
        _scaledobject(helm, "worker.concurrency=8")["spec"]["advanced"]["scalingModifiers"][
            "target"
        ]
        == "8"
    )
    set_target = _scaledobject(helm, "worker.concurrency=8", "keda.targetPerReplica=5")
    assert set_target["spec"]["advanced"]["scalingModifiers"]["target"] == "5"
    assert {t["metadata"]["listLength"] for t in set_target["spec"]["triggers"]} == {"5"}


@pytest.mark.parametrize("helm", HELM_LIST)
def test_in_flight_can_be_left_out_and_activation_follows_the_value(helm):
    so = _scaledobject(helm, "keda.countInFlight=false", "keda.activationListLength=3")
    modifiers = so["spec"]["advanced"]["scalingModifiers"]
    assert modifiers["formula"] == "q0 + q1 + q2 + q3"
    assert "unacked" not in [t["metadata"]["listName"] for t in so["spec"]["triggers"]]
    assert modifiers["activationTarget"] == "3"


@pytest.mark.parametrize("helm", HELM_LIST)
def test_the_removed_list_length_fails_with_a_pointer(helm):
    err = render_fails(helm, "keda.listLength=5")
    assert "keda.listLength was replaced by keda.targetPerReplica" in err, err
