"""Helpers the chart policy tests share (tests/chart/test_policy_*.py)."""

import json
import re

import yaml

from .chartlib import CASE_FILES, HELMS, MATRIX, pod_annotations, pod_labels, pod_spec

CASES = [(h, c) for h in sorted(HELMS) for c in MATRIX]


SEP = "\x06\x16"


def _is_test_hook(obj):
    return (obj["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"


def _is_hook(obj):
    """Any Helm hook (the `helm test` pod, the password Job): run to completion, then gone."""
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def _containers(obj):
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def _case_values(case):
    return yaml.safe_load(CASE_FILES[case].read_text()) or {}


def _worker(render):
    """The default pool's Deployment (its name predates pools and is kept)."""
    return render.get("Deployment", "celery-harder-worker")


def _pools(render):
    """Every worker pool's Deployment by pool name (label celery-harder.io/pool)."""
    return {
        pod_labels(d)["celery-harder.io/pool"]: d
        for d in render.of_kind("Deployment")
        if "celery-harder.io/pool" in pod_labels(d)
    }


def _pool_queues(deployment):
    """The queues a pool's worker consumes: its `-Q` argument."""
    (container,) = pod_spec(deployment)["containers"]
    args = container["args"]
    return args[args.index("-Q") + 1].split(",")


def _pool_values(case, pool):
    """What the case's values say of one pool: its own keys over `worker.*`, `keda.*` over it."""
    values = _case_values(case)
    worker, keda = values.get("worker", {}), values.get("keda", {})
    if pool == "default":
        return {**worker, "keda": keda}
    (own,) = [p for p in values.get("workers", []) if p["name"] == pool]
    return {**worker, **own, "keda": {**keda, "targetPerReplica": None, **own.get("keda", {})}}


def _worker_command(render):
    """The worker container's args: the flags added to the image's ENTRYPOINT."""
    (container,) = pod_spec(_worker(render))["containers"]
    assert "command" not in container, "the image's ENTRYPOINT is the worker's command"
    return container["args"]


def _config(render):
    return render.get("ConfigMap", "celery-harder-config")["data"]


def generated_secret_specs(render):
    """name -> spec of the Secrets the password hook Job creates (its SECRETS variable)."""
    jobs = [j for j in render.of_kind("Job") if j["metadata"]["name"] == "celery-harder-secrets"]
    if not jobs:
        return {}
    (c,) = pod_spec(jobs[0])["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    return {s["name"]: s for s in json.loads(env["SECRETS"])}


# The chart's broker URL: redis:// or rediss:// (TLS, with its query), an optional ACL user.
BROKER_URL = re.compile(
    r"(?P<scheme>rediss?)://(?P<user>[^:@]*):\$\(REDIS_PASSWORD\)@(?P<address>[^/]+)"
    r"/(?P<db>\d+)(?:\?(?P<query>.*))?$"
)


def _worker_broker(worker):
    """(host:port, database) of the worker's CELERY_BROKER_URL."""
    url = next(
        e["value"]
        for e in pod_spec(worker)["containers"][0]["env"]
        if e["name"] == "CELERY_BROKER_URL"
    )
    return BROKER_URL.match(url).group("address", "db")


def worker_broker_host(worker):
    return _worker_broker(worker)[0]


def worker_broker_db(worker):
    return _worker_broker(worker)[1]


def _checksums(render):
    return {
        w["metadata"]["name"]: pod_annotations(w).get("checksum/config")
        for w in render.workloads()
        if "checksum/config" in pod_annotations(w)
    }


def _allowed(render, src_labels, src_ns, dest_obj, port):
    """Minimal NetworkPolicy ingress evaluation (matchLabels only, which is all the chart uses)."""
    dest_labels = pod_labels(dest_obj)
    policies = [
        np
        for np in render.of_kind("NetworkPolicy")
        if np["spec"]["podSelector"]["matchLabels"].items() <= dest_labels.items()
    ]
    if not policies:
        return True
    ns_labels = {"kubernetes.io/metadata.name": src_ns}
    for np in policies:
        for rule in np["spec"].get("ingress", []):
            if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                pod_ok = (
                    "podSelector" not in peer
                    or peer["podSelector"].get("matchLabels", {}).items() <= src_labels.items()
                )
                if "namespaceSelector" in peer:
                    ns_ok = (
                        peer["namespaceSelector"].get("matchLabels", {}).items()
                        <= ns_labels.items()
                    )
                else:
                    ns_ok = src_ns == "celery-harder"
                if pod_ok and ns_ok:
                    return True
    return False
