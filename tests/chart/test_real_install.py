"""What a first install on a real cluster needs from the render.

Found or expected on the local single-node cluster (tier T4-local, docs/architecture.md):
KEDA resolves the Redis address from its own namespace; images are imported, never
pulled; a 2-CPU node; Flower's memory; probes on a slow node; every kombu consumer's
visibility timeout.
"""

import re

import pytest
import yaml

from .chartlib import (
    CHART,
    HELMS,
    REPO,
    Render,
    pod_spec,
    render_case,
    render_sets,
    run_helm,
    template_args,
)

HELM_LIST = sorted(HELMS)
LOCAL = "ci-local-cluster"


def _containers(render):
    for w in render.workloads():
        for c in pod_spec(w)["containers"]:
            yield w, c


def _env(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _cpu(value):
    value = str(value)
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def _mib(value):
    value = str(value)
    units = {"Mi": 1, "Gi": 1024, "Ki": 1 / 1024}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return int(value) / 2**20


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize("helm", HELM_LIST)
def test_every_in_chart_address_is_qualified_with_the_namespace(helm):
    """KEDA's operator resolves the trigger address from namespace `keda`; the short name fails."""
    proc = run_helm(helm, *template_args(namespace="jobs"))
    render = Render(
        helm, "namespace jobs", proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d]
    )
    redis = "celery-harder-redis.jobs.svc:6379"
    services = {s["metadata"]["name"]: s for s in render.of_kind("Service")}
    host, port = redis.split(":")
    assert host.split(".")[0] in services
    assert int(port) in [p["port"] for p in services[host.split(".")[0]]["spec"]["ports"]]
    urls = [
        (w["metadata"]["name"], name, value)
        for w, c in _containers(render)
        for name, value in _env(c).items()
        if name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CE_BROKER_URL")
    ]
    assert len(urls) >= 9  # api, worker, flower, operator (two each), exporter
    for workload, name, url in urls:
        assert url == f"redis://:$(REDIS_PASSWORD)@{redis}/0", (workload, name, url)
    (so,) = render.of_kind("ScaledObject")
    assert {t["metadata"]["address"] for t in so["spec"]["triggers"]} == {redis}
    (pod,) = render.of_kind("Pod")
    assert _env(pod["spec"]["containers"][0])["API"] == "http://celery-harder-api.jobs.svc:8000"
    # no `cluster.local` assumed: the search list of every pod resolves <svc>.<ns>.svc
    assert "cluster.local" not in proc.stdout


@pytest.mark.parametrize("helm", HELM_LIST)
def test_an_external_redis_host_is_used_as_given(helm):
    render = render_case(helm, "external-redis")
    (so,) = render.of_kind("ScaledObject")
    assert {t["metadata"]["address"] for t in so["spec"]["triggers"]} == {
        "redis.shared.svc.cluster.local:6380"
    }


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("helm", HELM_LIST)
def test_default_images_match_the_locally_buildable_versions(helm):
    images = {c["name"]: c["image"] for _, c in _containers(render_case(helm, "defaults"))}
    assert images["redis"] == "redis:7.0.15"  # Debian bookworm's redis-server
    # the same release as PyPI's prometheus-exporter-celery the tests run
    assert images["exporter"] == "danihodovic/celery-exporter:0.11.2"


def test_no_file_mentions_the_previous_image_versions():
    stale = re.compile(r"7\.2\.7|0\.10\.14")
    files = [REPO / "README.md", *CHART.rglob("*")]
    hits = [
        str(p.relative_to(REPO))
        for p in files
        if p.is_file()
        and p.suffix in (".md", ".yaml", ".json", ".tpl", ".txt", ".py", "")
        and stale.search(p.read_text(errors="replace"))
    ]
    assert not hits, hits


# ---------------------------------------------------------------- Flower


@pytest.mark.parametrize("helm", HELM_LIST)
def test_flower_keeps_a_bounded_history(helm):
    flower = render_case(helm, "defaults").get("Deployment", "celery-harder-flower")
    cmd = pod_spec(flower)["containers"][0]["command"]
    assert "--max-tasks=10000" in cmd and "--max-workers=1000" in cmd
    limit = pod_spec(flower)["containers"][0]["resources"]["limits"]["memory"]
    # ~70 MiB for Flower + ~6.5 KiB per task (measured with Flower 2.2), with headroom
    assert 0.75 * _mib(limit) > 70 + 10000 * 6.5 / 1024
    small = render_sets(helm, ("flower.maxTasks=500", "flower.maxWorkers=20"))
    cmd = pod_spec(small.get("Deployment", "celery-harder-flower"))["containers"][0]["command"]
    assert "--max-tasks=500" in cmd and "--max-workers=20" in cmd


# ---------------------------------------------------------------- probes, consumers


@pytest.mark.parametrize("helm", HELM_LIST)
def test_long_running_containers_start_behind_a_startup_probe(helm):
    render = render_case(helm, "defaults")
    for w, c in _containers(render):
        if w["kind"] != "Deployment":
            continue
        assert "startupProbe" in c, w["metadata"]["name"]
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 180
        assert "initialDelaySeconds" not in c["livenessProbe"], w["metadata"]["name"]


@pytest.mark.parametrize("helm", HELM_LIST)
def test_the_exporter_restores_unacked_messages_no_earlier_than_the_workers(helm):
    """kombu consumers restore every queue's unacked messages after *their* visibility timeout."""
    render = render_sets(helm, ("celery.visibilityTimeout=7200",))
    config = render.get("ConfigMap", "celery-harder-config")["data"]
    assert config["CELERY_HARDER_VISIBILITY_TIMEOUT"] == "7200"
    (c,) = pod_spec(render.get("Deployment", "celery-harder-exporter"))["containers"]
    assert "--broker-transport-option=visibility_timeout=$(CE_VISIBILITY_TIMEOUT)" in c["args"]
    assert _env(c)["CE_VISIBILITY_TIMEOUT"] == "7200"
    # Flower reads the same ConfigMap (the app's broker_transport_options come from it)
    (f,) = pod_spec(render.get("Deployment", "celery-harder-flower"))["containers"]
    assert {"configMapRef": {"name": "celery-harder-config"}} in f["envFrom"]


# ---------------------------------------------------------------- local cluster values


@pytest.mark.parametrize("helm", HELM_LIST)
def test_local_cluster_values_use_imported_images_and_generated_passwords(helm):
    render = render_case(helm, LOCAL)
    for w, c in _containers(render):
        assert c["imagePullPolicy"] == "Never", (w["metadata"]["name"], c["name"])
    images = {c["image"] for _, c in _containers(render)}
    assert {
        "celery-harder/api:dev",
        "celery-harder/worker:dev",
        "celery-harder/operator:dev",
        "redis:7.0.15",
        "danihodovic/celery-exporter:0.11.2",
    } == images
    services = {s["metadata"]["name"]: s for s in render.of_kind("Service")}
    assert services["celery-harder-api"]["spec"]["ports"][0]["nodePort"] == 30800
    assert services["celery-harder-flower"]["spec"]["ports"][0]["nodePort"] == 30555
    assert not render.of_kind("Secret"), "no fixed passwords: the generated path is exercised"
    assert render.get("Job", "celery-harder-secrets")
    assert not render.of_kind("ServiceMonitor") and not render.of_kind("PrometheusRule")
    (so,) = render.of_kind("ScaledObject")
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 4)


@pytest.mark.parametrize("helm", HELM_LIST)
def test_local_cluster_values_fit_a_two_cpu_node_with_six_workers(helm):
    render = render_case(helm, LOCAL)
    requests = {}
    for w, c in _containers(render):
        if w["kind"] in ("Deployment", "StatefulSet"):
            requests[w["metadata"]["name"]] = _cpu(c["resources"]["requests"]["cpu"])
    workers = 6 * requests.pop("celery-harder-worker")
    # CoreDNS (50m) and KEDA's operator and metrics server (100m each) share the node
    system = 250
    assert sum(requests.values()) + workers + system <= 1500, (requests, workers)
    (worker,) = pod_spec(render.get("Deployment", "celery-harder-worker"))["containers"]
    concurrency = int(
        next(a for a in worker["args"] if a.startswith("--concurrency=")).split("=")[1]
    )
    assert concurrency == 2
    # the limits still let both prefork processes run at full speed and hold a task's memory
    assert _cpu(worker["resources"]["limits"]["cpu"]) >= 1000
    assert _mib(worker["resources"]["limits"]["memory"]) >= 512


def test_local_cluster_values_are_documented_where_the_cluster_is_started():
    text = (CHART / "ci" / "local-cluster-values.yaml").read_text()
    assert "pullPolicy: Never" in text and "generated-password" in text
    readme = (CHART / "README.md").read_text()
    assert "ci/local-cluster-values.yaml" in readme


# ---------------------------------------------------------------- README


def test_readme_documents_the_install_decisions():
    readme = (CHART / "README.md").read_text()
    for phrase in (
        # cross-namespace names
        "<service>.<namespace>.svc",
        "server misbehaving",
        # scaling on work in flight, and KEDA's source
        "ceil((waiting + in flight) / target)",
        'formula: "q0 + q1 + q2 + q3 + unacked"',
        "elseif listType == 'hash' then return redis.call('hlen', listName)",
        "keda.targetPerReplica",
        "A pool's running tasks therefore size that pool alone",
        "Activation counts work in flight",
        # pod-deletion-cost
        "Why no `controller.kubernetes.io/pod-deletion-cost`",
        "airflow-helm/charts#339",
        # GitOps-safe passwords
        "Passwords and GitOps (Argo CD, Flux, `helm template`)",
        "apache/airflow#20999",
        "PreSync",
        "kubectl -n <ns> rollout restart",
        "helm uninstall` leaves it",
        # Flower
        "--max-tasks",
    ):
        assert phrase in readme, phrase


def test_readme_quotes_keda_lines_that_exist_in_the_keda_module():
    from .test_keda_in_flight import _keda_lua  # noqa: PLC0415

    lua = " ".join(_keda_lua().split())
    block = re.search(r"```lua\n(.*?)```", (CHART / "README.md").read_text(), re.S).group(1)
    for quoted in block.strip().splitlines():
        assert " ".join(quoted.split()) in lua, quoted
