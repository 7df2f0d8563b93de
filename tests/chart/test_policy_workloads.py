"""Chart policy, every workload: locked down, tokens, selectors, checksums, broker URLs."""

import pytest

from .chartlib import HELMS, pod_annotations, pod_labels, pod_spec, render_case, render_sets
from .policylib import (
    BROKER_URL,
    CASES,
    _case_values,
    _checksums,
    _containers,
    _is_hook,
    _is_test_hook,
    _worker,
    generated_secret_specs,
    worker_broker_db,
    worker_broker_host,
)


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
            assert BROKER_URL.match(env["CELERY_BROKER_URL"]["value"])
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


def _broker_clients(render):
    """(workload, container, URL) of every container that talks to Redis as Celery does."""
    for obj in render.workloads():
        for c in pod_spec(obj)["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            url = env.get("CELERY_BROKER_URL") or env.get("CE_BROKER_URL")
            if url:
                yield obj, c, url


@pytest.mark.parametrize("helm,case", CASES)
def test_every_redis_client_verifies_tls_with_the_mounted_ca_when_asked(helm, case):
    render = render_case(helm, case)
    external = _case_values(case).get("externalRedis", {})
    tls = external.get("tls", {}).get("enabled", False)
    clients = list(_broker_clients(render))
    # the API, every worker pool, Flower, the operator and the exporter
    pools = len(_case_values(case).get("workers", [])) + 1
    assert len({obj["metadata"]["name"] for obj, _, _ in clients}) == 4 + pools
    for obj, container, url in clients:
        parts = BROKER_URL.match(url)
        assert parts, url
        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
        if not tls:
            assert parts["scheme"] == "redis" and not parts["query"], url
            assert "redis-ca" not in mounts and "redis-ca" not in volumes
            continue
        assert parts["scheme"] == "rediss"
        assert parts["user"] == external.get("username", "")
        query = dict(q.split("=", 1) for q in parts["query"].split("&"))
        # Always verified: kombu would take a bare rediss:// as CERT_NONE.
        assert query["ssl_cert_reqs"] == "required"
        mount = mounts["redis-ca"]
        assert mount["readOnly"] is True
        ca_key = external["tls"]["caSecretKey"]
        assert query["ssl_ca_certs"] == f"{mount['mountPath']}/{ca_key}"
        assert volumes["redis-ca"]["secret"]["secretName"] == external["tls"]["caSecret"]


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_helm_test_pod_calls_the_api(helm):
    render = render_case(helm, "defaults")
    (pod,) = render.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["API"] == "http://celery-harder-api.celery-harder.svc:8000"
    assert env["AUTH"] == "true"
    (key,) = (e["valueFrom"]["secretKeyRef"] for e in c["env"] if e["name"] == "API_KEY")
    # The generated Secret's key; optional, since an existingSecret may hold digests only.
    assert key == {"name": "celery-harder-api-keys", "key": "api-key", "optional": True}
    script = c["command"][-1]
    assert '"/healthz"' in script and '"/add"' in script and "/result/" in script
    assert '"X-API-Key"' in script and "status == 401" in script
    compile(script, "helm-test", "exec")


@pytest.mark.parametrize("helm", sorted(HELMS))
def test_the_api_reads_its_key_digests_from_the_secret_and_rolls_when_it_changes(helm):
    for case, secret, key in (
        ("defaults", "celery-harder-api-keys", "api-keys"),
        ("auth-on", "platform-api-keys", "entries"),
    ):
        render = render_case(helm, case)
        api = render.get("Deployment", "celery-harder-api")
        (c,) = pod_spec(api)["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["CELERY_HARDER_API_AUTH"]["value"] == "true"
        assert env["CELERY_HARDER_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
            "name": secret,
            "key": key,
        }
        assert "checksum/api-keys" in pod_annotations(api)
    off = render_sets(helm, ("api.auth.enabled=false",))
    api = off.get("Deployment", "celery-harder-api")
    (c,) = pod_spec(api)["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["CELERY_HARDER_API_AUTH"]["value"] == "false"
    assert "CELERY_HARDER_API_KEYS" not in env
    (pod,) = off.of_kind("Pod")
    (tc,) = pod["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in tc["env"]}["AUTH"] == "false"
    assert "API_KEY" not in {e["name"] for e in tc["env"]}
