"""Policy assertions over every rendered workload, for every matrix case and both helms."""

import json
import re

import pytest
import yaml

from celery_harder_dev.queues import queue_keys

from .chartlib import (
    CASE_FILES,
    HELMS,
    MATRIX,
    pod_annotations,
    pod_labels,
    pod_spec,
    render_case,
    render_sets,
)

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
    return render.get("Deployment", "celery-harder-worker")


def _worker_command(render):
    """The worker container's args: the flags added to the image's ENTRYPOINT."""
    (container,) = pod_spec(_worker(render))["containers"]
    assert "command" not in container, "the image's ENTRYPOINT is the worker's command"
    return container["args"]


def _config(render):
    return render.get("ConfigMap", "celery-harder-config")["data"]


@pytest.mark.parametrize("helm,case", CASES)
def test_workloads_are_locked_down(helm, case):  # noqa: PLR0912
    render = render_case(helm, case)
    problems = []
    assert render.workloads()
    for obj in render.workloads():
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problems.append(f"{ident}: pod runAsNonRoot is not true")
        if not isinstance(psc.get("runAsUser"), int) or psc["runAsUser"] == 0:
            problems.append(f"{ident}: no fixed non-root runAsUser")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{ident}: seccompProfile is not RuntimeDefault")
        mounts = set()
        for c in _containers(obj):
            cid = f"{ident} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cid}: root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cid}: allowPrivilegeEscalation is not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{cid}: capabilities are not all dropped")
            if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0 or sc.get("privileged"):
                problems.append(f"{cid}: may run as root or privileged")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problems.append(f"{cid}: no {kind}.{r}")
            image = c["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{cid}: image {image} is untagged or latest")
            if not _is_hook(obj):
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problems.append(f"{cid}: no {probe}")
            mounts |= {m["mountPath"] for m in c.get("volumeMounts", [])}
        if "/tmp" not in mounts:
            problems.append(f"{ident}: no writable /tmp mount")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in _containers(obj):
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and not any(
                    t["metadata"]["name"] == m["name"]
                    for t in obj["spec"].get("volumeClaimTemplates", [])
                ):
                    problems.append(f"{ident}: mount {m['name']} has no volume")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("helm,case", CASES)
def test_only_the_operator_and_the_password_job_get_a_service_account_token(helm, case):
    render = render_case(helm, case)
    for obj in render.workloads():
        spec = pod_spec(obj)
        name = obj["metadata"]["name"]
        if name.endswith("-operator"):
            assert spec["serviceAccountName"] == "celery-harder-operator"
        elif name == "celery-harder-secrets":
            assert obj["kind"] == "Job" and _is_hook(obj)
            assert spec["serviceAccountName"] == "celery-harder-secrets"
            assert spec["automountServiceAccountToken"] is True
        else:
            assert spec.get("automountServiceAccountToken") is False, name


@pytest.mark.parametrize("helm,case", CASES)
def test_every_service_selects_rendered_pods(helm, case):
    render = render_case(helm, case)
    pods = [pod_labels(w) for w in render.workloads() if not _is_test_hook(w)]
    for svc in render.of_kind("Service"):
        selector = svc["spec"]["selector"]
        assert selector, f"Service {svc['metadata']['name']} has no selector"
        matching = [p for p in pods if all(p.get(k) == v for k, v in selector.items())]
        assert matching, (
            f"Service {svc['metadata']['name']} selects {selector}: no pods in the render"
        )
        # named target ports exist on the selected pods
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str):
                names = {
                    p["name"]
                    for w in render.workloads()
                    if all(pod_labels(w).get(k) == v for k, v in selector.items())
                    for c in pod_spec(w)["containers"]
                    for p in c.get("ports", [])
                }
                assert target in names, (
                    f"Service {svc['metadata']['name']}: no container port named {target}"
                )


@pytest.mark.parametrize("helm,case", CASES)
def test_workload_selectors_match_their_pod_labels(helm, case):
    render = render_case(helm, case)
    for obj in render.workloads():
        if obj["kind"] == "Pod":
            continue
        labels = pod_labels(obj)
        # A Job's selector is generated by the API server (controller-uid).
        if obj["kind"] != "Job":
            sel = obj["spec"]["selector"]["matchLabels"]
            assert all(labels.get(k) == v for k, v in sel.items()), obj["metadata"]["name"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in obj["metadata"]["labels"], (
                f"{obj['metadata']['name']}: label {key} missing"
            )


@pytest.mark.parametrize("helm,case", CASES)
def test_networkpolicies_select_rendered_pods(helm, case):
    render = render_case(helm, case)
    # Hooks are left out: the password Job runs before any policy exists on install and
    # serves nothing; the helm test pod is a client of the API policy (checked below).
    pods = [pod_labels(w) for w in render.workloads() if not _is_hook(w)]
    policies = render.of_kind("NetworkPolicy")
    assert policies
    covered = set()
    for np in policies:
        sel = np["spec"]["podSelector"]["matchLabels"]
        matching = [p for p in pods if all(p.get(k) == v for k, v in sel.items())]
        assert matching, f"NetworkPolicy {np['metadata']['name']} selects nothing"
        covered |= {p["app.kubernetes.io/component"] for p in matching}
    components = {p["app.kubernetes.io/component"] for p in pods}
    assert covered == components, f"pods without a NetworkPolicy: {components - covered}"
    redis_np = [np for np in policies if np["metadata"]["name"] == "celery-harder-redis"]
    if redis_np:
        # every pod that receives CELERY_BROKER_URL carries the Redis-client label
        for w in render.workloads():
            env = {e["name"] for c in pod_spec(w)["containers"] for e in c.get("env", [])}
            if "CELERY_BROKER_URL" in env or "CE_BROKER_URL" in env:
                assert pod_labels(w).get("celery-harder.io/redis-client") == "true", w["metadata"][
                    "name"
                ]


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


@pytest.mark.parametrize("helm,case", CASES)
def test_scaledobject_counts_the_queue_its_priority_lists_and_work_in_flight(helm, case):
    render = render_case(helm, case)
    worker = _worker(render)
    if case == "keda-off":
        assert worker["spec"]["replicas"] == 3
        return
    assert "replicas" not in worker["spec"], "KEDA on: the Deployment must not set replicas"
    (so,) = render.of_kind("ScaledObject")
    cmd = _worker_command(render)
    queue = cmd[cmd.index("-Q") + 1]
    triggers = so["spec"]["triggers"]
    names = [t["metadata"]["listName"] for t in triggers]
    # waiting: the queue and its priority lists; in flight: kombu's `unacked` hash
    assert names == [queue, f"{queue}{SEP}3", f"{queue}{SEP}6", f"{queue}{SEP}9", "unacked"]
    assert so["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    # the formula sums every trigger, by name
    formula = so["spec"]["advanced"]["scalingModifiers"]["formula"]
    assert sorted(re.findall(r"\w+", formula)) == sorted(t["name"] for t in triggers)
    assert set(re.sub(r"\w+", "", formula).replace(" ", "")) == {"+"}
    values = _case_values(case).get("keda", {})
    assert so["spec"]["minReplicaCount"] == values.get("minReplicaCount", 1)
    concurrency = _case_values(case).get("worker", {}).get("concurrency", 2)
    target = str(values.get("targetPerReplica") or concurrency)
    assert so["spec"]["advanced"]["scalingModifiers"]["target"] == target
    # every trigger authenticates through the TriggerAuthentication that reads the pods' Redis Secret  # noqa: E501
    (ta,) = render.of_kind("TriggerAuthentication")
    (ref,) = ta["spec"]["secretTargetRef"]
    redis_env = next(
        e for e in pod_spec(worker)["containers"][0]["env"] if e["name"] == "REDIS_PASSWORD"
    )
    assert ref["parameter"] == "password"
    assert {"name": ref["name"], "key": ref["key"]} == redis_env["valueFrom"]["secretKeyRef"]
    for t in triggers:
        assert t["type"] == "redis"
        assert t["authenticationRef"]["name"] == ta["metadata"]["name"]
        host = worker_broker_host(worker)
        assert t["metadata"]["address"] == host
        assert t["metadata"]["databaseIndex"] == worker_broker_db(worker)
        assert "password" not in t["metadata"] and "passwordFromEnv" not in t["metadata"]


def generated_secret_specs(render):
    """name -> spec of the Secrets the password hook Job creates (its SECRETS variable)."""
    jobs = [j for j in render.of_kind("Job") if j["metadata"]["name"] == "celery-harder-secrets"]
    if not jobs:
        return {}
    (c,) = pod_spec(jobs[0])["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    return {s["name"]: s for s in json.loads(env["SECRETS"])}


def worker_broker_host(worker):
    url = next(
        e["value"]
        for e in pod_spec(worker)["containers"][0]["env"]
        if e["name"] == "CELERY_BROKER_URL"
    )
    return re.match(r"redis://:\$\(REDIS_PASSWORD\)@([^/]+)/(\d+)$", url).group(1)


def worker_broker_db(worker):
    url = next(
        e["value"]
        for e in pod_spec(worker)["containers"][0]["env"]
        if e["name"] == "CELERY_BROKER_URL"
    )
    return re.match(r"redis://:\$\(REDIS_PASSWORD\)@([^/]+)/(\d+)$", url).group(2)


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
    render = render_case(helm, case)
    (pdb,) = render.of_kind("PodDisruptionBudget")
    spec = pdb["spec"]
    assert "minAvailable" not in spec
    max_unavailable = spec["maxUnavailable"]
    if isinstance(max_unavailable, str):
        assert max_unavailable.endswith("%") and int(max_unavailable[:-1]) > 0
    else:
        assert max_unavailable >= 1
    assert spec["selector"]["matchLabels"].items() <= pod_labels(_worker(render)).items()


@pytest.mark.parametrize("helm,case", CASES)
def test_app_pods_carry_checksums_and_read_the_shared_config(helm, case):
    render = render_case(helm, case)
    for obj in render.workloads():
        name = obj["metadata"]["name"]
        if _is_hook(obj) or name.endswith(("-redis", "-exporter")):
            continue
        assert "checksum/config" in pod_annotations(obj), name
        (c,) = pod_spec(obj)["containers"]
        assert {"configMapRef": {"name": "celery-harder-config"}} in c["envFrom"], name
        env = [e["name"] for e in c["env"]]
        # the password comes before the URLs that expand it
        assert (
            env.index("REDIS_PASSWORD")
            < env.index("CELERY_BROKER_URL")
            < env.index("CELERY_RESULT_BACKEND")
        )


def _checksums(render):
    return {
        w["metadata"]["name"]: pod_annotations(w).get("checksum/config")
        for w in render.workloads()
        if "checksum/config" in pod_annotations(w)
    }


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_checksum_changes_with_config_and_only_then(helm):
    base = _checksums(render_sets(helm, ()))
    again = _checksums(render_sets(helm, ("api.replicaCount=1",)))
    assert base == again, "a value outside the shared config must not roll pods"
    changed = _checksums(render_sets(helm, ("celery.resultExpires=3600",)))
    assert base.keys() == changed.keys() and len(base) >= 4
    assert all(base[k] != changed[k] for k in base), (
        "changing shared config must roll every app pod"
    )
    creds = render_sets(helm, ("redis.auth.password=other",))
    before = {
        w["metadata"]["name"]: pod_annotations(w).get("checksum/credentials")
        for w in render_sets(helm, ()).workloads()
    }
    after = {
        w["metadata"]["name"]: pod_annotations(w).get("checksum/credentials")
        for w in creds.workloads()
    }
    assert before["celery-harder-worker"] != after["celery-harder-worker"]


@pytest.mark.parametrize("helm,case", CASES)
def test_broker_urls_carry_the_password_from_the_secret(helm, case):
    render = render_case(helm, case)
    secrets = {s["metadata"]["name"]: s for s in render.of_kind("Secret")}
    generated = generated_secret_specs(render)
    values = _case_values(case)
    for obj in render.workloads():
        for c in pod_spec(obj)["containers"]:
            env = {e["name"]: e for e in c.get("env", [])}
            if "CELERY_BROKER_URL" not in env:
                continue
            assert env["CELERY_BROKER_URL"]["value"] == env["CELERY_RESULT_BACKEND"]["value"]
            assert env["CELERY_BROKER_URL"]["value"].startswith("redis://:$(REDIS_PASSWORD)@")
            ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
            existing = values.get("redis", {}).get("auth", {}).get("existingSecret") or values.get(
                "externalRedis", {}
            ).get("existingSecret")
            if existing:
                assert ref["name"] == existing
            elif ref["name"] in secrets:
                assert ref["key"] in secrets[ref["name"]]["data"]
            else:
                # made in the cluster by the password hook Job, never rendered
                assert generated[ref["name"]]["kind"] == "redis-password"
                assert ref["key"] == "redis-password"
    if case == "external-redis":
        assert not render.of_kind("StatefulSet")
        worker = _worker(render)
        assert worker_broker_host(worker) == "redis.shared.svc.cluster.local:6380"
        assert worker_broker_db(worker) == "2"


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
def test_operator_rbac_is_minimal(helm):
    render = render_case(helm, "defaults")
    (role,) = render.of_kind("ClusterRole")
    rules = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert rules[("celery-harder.io", "taskworkflows")] == {
        "get",
        "list",
        "watch",
        "patch",
        "delete",
    }
    assert rules[("celery-harder.io", "taskworkflows/status")] == {"get", "patch", "update"}
    assert {"list", "watch"} <= rules[("apiextensions.k8s.io", "customresourcedefinitions")]
    assert {"list", "watch"} <= rules[("", "namespaces")]
    assert "create" in rules[("", "events")]
    assert not any("kopfpeerings" in r for _, r in rules), "--standalone needs no peering rights"
    assert all("*" not in v for v in rules.values()) and all("*" not in k[1] for k in rules)
    # delete only where ttlSecondsAfterFinished needs it: the operator's own resource.
    assert not any(
        v & {"delete", "deletecollection", "escalate", "bind", "impersonate"}
        for k, v in rules.items()
        if k != ("celery-harder.io", "taskworkflows")
    )
    assert "deletecollection" not in rules[("celery-harder.io", "taskworkflows")]
    dep = render.get("Deployment", "celery-harder-operator")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    cmd = pod_spec(dep)["containers"][0]["command"]
    assert cmd[:4] == ["kopf", "run", "--standalone", "--all-namespaces"]
    (binding,) = render.of_kind("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == pod_spec(dep)["serviceAccountName"]


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_flower_basic_auth_from_a_secret(helm):
    render = render_case(helm, "defaults")
    flower = render.get("Deployment", "celery-harder-flower")
    (c,) = pod_spec(flower)["containers"]
    assert c["command"][3:5] == ["flower", "--port=5555"]
    env = {e["name"]: e for e in c["env"]}
    ref = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "celery-harder-flower", "key": "basic-auth"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthcheck"
    auth = render_case(helm, "auth-on").get("Deployment", "celery-harder-flower")
    env = {e["name"]: e for e in pod_spec(auth)["containers"][0]["env"]}
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": "platform-flower",
        "key": "auth",
    }


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_monitoring_rules_and_dashboard(helm):
    render = render_case(helm, "ci-kind")
    (rule,) = render.of_kind("PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"CeleryTaskHighFailRate", "CeleryHighQueueLength", "CeleryWorkerDown"}
    assert (
        alerts["CeleryHighQueueLength"]["for"] == "20m"
        and "> 100" in alerts["CeleryHighQueueLength"]["expr"]
    )
    assert alerts["CeleryWorkerDown"]["for"] == "15m"
    assert (
        "[10m]" in alerts["CeleryTaskHighFailRate"]["expr"]
        and "> 5" in alerts["CeleryTaskHighFailRate"]["expr"]
    )
    assert (
        "{{ $labels.queue_name }}" in alerts["CeleryHighQueueLength"]["annotations"]["description"]
    )
    off = render_case(helm, "monitoring-on").of_kind("PrometheusRule")[0]
    assert "CeleryWorkerDown" not in {r["alert"] for g in off["spec"]["groups"] for r in g["rules"]}
    (dash,) = [
        c
        for c in render.of_kind("ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    board = json.loads(dash["data"]["celery-harder-overview.json"])
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for metric in (
        "celery_task_failed_total",
        "celery_queue_length",
        "celery_worker_up",
        "celery_task_runtime_bucket",
    ):
        assert metric in exprs
    monitors = {m["metadata"]["name"]: m for m in render.of_kind("ServiceMonitor")}
    assert set(monitors) == {"celery-harder-exporter", "celery-harder-api", "celery-harder-flower"}
    services = {s["metadata"]["name"]: s for s in render.of_kind("Service")}
    for name, sm in monitors.items():
        svc = services[name]
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}


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
    assert c["ports"][0]["containerPort"] == 9808
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_helm_test_pod_calls_the_api(helm):
    render = render_case(helm, "defaults")
    (pod,) = render.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["API"] == "http://celery-harder-api.celery-harder.svc:8000"
    script = c["command"][-1]
    assert '"/healthz"' in script and '"/add"' in script and "/result/" in script
    compile(script, "helm-test", "exec")


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


@pytest.mark.parametrize("helm,case", CASES)
def test_networkpolicies_allow_exactly_the_needed_traffic(helm, case):
    render = render_case(helm, case)
    pods = {pod_labels(w)["app.kubernetes.io/component"]: w for w in render.workloads()}
    ns = "celery-harder"
    if "redis" in pods:
        for client in ("api", "worker", "flower", "exporter", "operator"):
            if client in pods:
                assert _allowed(render, pod_labels(pods[client]), ns, pods["redis"], 6379), (
                    f"{client} -> redis blocked"
                )
        assert not _allowed(render, pod_labels(pods["test-api"]), ns, pods["redis"], 6379), (
            "test pod reaches redis"
        )
        assert not _allowed(render, {"app": "stranger"}, ns, pods["redis"], 6379), (
            "any pod reaches redis"
        )
        assert _allowed(render, {"app": "keda-operator"}, "keda", pods["redis"], 6379) is (
            case != "keda-off"
        )
    assert _allowed(render, pod_labels(pods["test-api"]), ns, pods["api"], 8000), (
        "helm test pod cannot reach the API"
    )
    assert not _allowed(render, pod_labels(pods["api"]), ns, pods["worker"], 8000), (
        "workers accept ingress"
    )
    assert not _allowed(render, pod_labels(pods["api"]), ns, pods["operator"], 8080), (
        "operator accepts ingress"
    )
    assert not _allowed(render, pod_labels(pods["test-api"]), ns, pods["api"], 9999), (
        "API open beyond its port"
    )
    if case == "auth-on":
        assert not _allowed(render, {"app": "stranger"}, "elsewhere", pods["api"], 8000)
        assert _allowed(render, {"app": "nginx"}, "ingress-nginx", pods["api"], 8000)
