"""Generated passwords never appear in a render; the hook Job that makes them in the cluster.

What a real API server does with the Job's script (create once, never change, keep a
Secret Helm used to own, the checksums that follow) is shown in
tests/k8s/test_chart_install.py; these tests pin the rendered shape.
"""

import hashlib
import json

import pytest
import yaml

from .chartlib import (
    CASE_FILES,
    CHART,
    HELMS,
    MATRIX,
    pod_annotations,
    pod_spec,
    render_sets,
    run_helm,
    template_args,
)

HELM_LIST = sorted(HELMS)
JOB = "celery-harder-secrets"
SCRIPT = CHART / "files" / "generate-secrets.py"


def _hooks(render):
    return [d for d in render.docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]


def _job_env(render):
    job = render.get("Job", JOB)
    (c,) = pod_spec(job)["containers"]
    return job, c, {e["name"]: e.get("value") for e in c["env"]}


@pytest.mark.parametrize("case", MATRIX)
@pytest.mark.parametrize("helm", HELM_LIST)
def test_helm_template_renders_the_same_bytes_twice(helm, case):
    args = template_args([CASE_FILES[case]])
    first, second = run_helm(helm, *args).stdout, run_helm(helm, *args).stdout
    assert first == second, "a render depends on chance (a random value or a lookup)"


@pytest.mark.parametrize("helm", HELM_LIST)
def test_generated_passwords_are_not_rendered_the_hook_job_makes_them(helm):
    render = render_sets(helm, ())
    assert not render.of_kind("Secret"), "no Secret (and no password) in a default render"
    _job, c, env = _job_env(render)
    specs = {s["name"]: s for s in json.loads(env["SECRETS"])}
    assert specs["celery-harder-redis"]["kind"] == "redis-password"
    assert specs["celery-harder-flower"] == {
        "name": "celery-harder-flower",
        "kind": "basic-auth",
        "username": "admin",
        "labels": {
            "app.kubernetes.io/name": "celery-harder",
            "app.kubernetes.io/component": "flower",
            "app.kubernetes.io/part-of": "celery-harder",
            "celery-harder.io/release": "celery-harder",
        },
    }
    assert specs["celery-harder-api-keys"] == {
        "name": "celery-harder-api-keys",
        "kind": "api-keys",
        "labels": {
            "app.kubernetes.io/name": "celery-harder",
            "app.kubernetes.io/component": "api",
            "app.kubernetes.io/part-of": "celery-harder",
            "celery-harder.io/release": "celery-harder",
        },
    }
    # Not Helm's and no Argo CD tracking label: nothing prunes the generated Secret.
    for spec in specs.values():
        assert "app.kubernetes.io/instance" not in spec["labels"]
        assert "app.kubernetes.io/managed-by" not in spec["labels"]
    # Every consumer reads exactly what the Job makes.
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for w in render.workloads()
        for ctr in pod_spec(w)["containers"]
        for e in ctr.get("env", [])
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {
        ("celery-harder-redis", "redis-password"),
        ("celery-harder-flower", "basic-auth"),
        ("celery-harder-api-keys", "api-keys"),  # the API: digests only
        ("celery-harder-api-keys", "api-key"),  # the helm test pod: the key itself
    }
    (ta,) = render.of_kind("TriggerAuthentication")
    assert ta["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "celery-harder-redis", "key": "redis-password"}
    ]
    # The script is the chart's file, run by the API image's python.
    assert c["command"][:2] == ["python", "-c"]
    assert c["command"][2].rstrip("\n") == SCRIPT.read_text().rstrip("\n")
    compile(c["command"][2], "generate-secrets.py", "exec")
    assert c["image"] == "celery-harder/api:0.1.0"
    assert env["SERVICEACCOUNT_DIR"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert env["NAMESPACE"] == "celery-harder" and env["REVISION"] == "1"


@pytest.mark.parametrize("helm", HELM_LIST)
def test_the_hook_job_and_its_rbac_run_first_and_are_cleaned_up(helm):
    render = render_sets(helm, ())
    hooks = {(d["kind"], d["metadata"]["name"]): d for d in _hooks(render)}
    kinds = {"ServiceAccount", "Role", "RoleBinding", "Job"}
    assert {k for k, n in hooks if n == JOB} == kinds
    weight = {}
    for kind in kinds:
        ann = hooks[(kind, JOB)]["metadata"]["annotations"]
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        weight[kind] = int(ann["helm.sh/hook-weight"])
    assert max(weight["ServiceAccount"], weight["Role"], weight["RoleBinding"]) < weight["Job"]
    role = hooks[("Role", JOB)]
    rules = [(tuple(r["verbs"]), tuple(r.get("resourceNames", []))) for r in role["rules"]]
    assert rules == [
        (("create",), ()),
        (
            ("get", "patch"),
            ("celery-harder-redis", "celery-harder-flower", "celery-harder-api-keys"),
        ),
    ]
    assert all(r["resources"] == ["secrets"] and r["apiGroups"] == [""] for r in role["rules"])
    binding = hooks[("RoleBinding", JOB)]
    assert binding["roleRef"]["name"] == JOB
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": JOB, "namespace": "celery-harder"}
    ]
    job = hooks[("Job", JOB)]
    assert pod_spec(job)["serviceAccountName"] == JOB
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("helm", HELM_LIST)
def test_networkpolicies_never_restrict_egress(helm):
    """The hook Job only calls the API server: ingress-only policies cannot block it."""
    render = render_sets(helm, ())
    policies = render.of_kind("NetworkPolicy")
    assert policies
    for np in policies:
        assert np["spec"]["policyTypes"] == ["Ingress"], np["metadata"]["name"]
        assert "egress" not in np["spec"]
        labels = np["spec"]["podSelector"]["matchLabels"]
        assert labels.get("app.kubernetes.io/component") != "secrets"


@pytest.mark.parametrize("helm", HELM_LIST)
def test_passwords_given_in_values_are_rendered_and_need_no_hook(helm):
    render = render_sets(
        helm,
        (
            "redis.auth.password=redis-pass",
            "flower.basicAuth.password=fl",
            "api.auth.existingSecret=platform-api-keys",
        ),
    )
    secrets = {s["metadata"]["name"]: s for s in render.of_kind("Secret")}
    assert secrets["celery-harder-redis"]["data"] == {"redis-password": "cmVkaXMtcGFzcw=="}
    assert secrets["celery-harder-flower"]["data"] == {
        "username": "YWRtaW4=",
        "password": "Zmw=",
        "basic-auth": "YWRtaW46Zmw=",
    }
    assert not _hooks(render) or {d["kind"] for d in _hooks(render)} == {"Pod"}
    # one generated, one given: the Job makes only the generated one
    mixed = render_sets(helm, ("redis.auth.password=redis-pass",))
    _, _, env = _job_env(mixed)
    made = [s["name"] for s in json.loads(env["SECRETS"])]
    assert made == ["celery-harder-flower", "celery-harder-api-keys"]
    assert [s["metadata"]["name"] for s in mixed.of_kind("Secret")] == ["celery-harder-redis"]


@pytest.mark.parametrize("helm", HELM_LIST)
def test_existing_secrets_need_neither_a_secret_nor_the_hook(helm):
    render = render_sets(
        helm,
        (
            "redis.auth.existingSecret=platform-redis",
            "flower.basicAuth.existingSecret=fl",
            "api.auth.existingSecret=platform-api-keys",
        ),
    )
    assert not render.of_kind("Secret")
    assert {d["kind"] for d in _hooks(render)} == {"Pod"}, "only the helm test pod"


def _annotation(render, kind, name, key):
    obj = render.get(kind, name)
    return pod_annotations(obj).get(key)


@pytest.mark.parametrize("helm", HELM_LIST)
def test_credential_checksums_hash_the_rendered_data_or_the_generated_state(helm):
    generated = render_sets(helm, ())
    # Without a cluster (helm template, Argo CD) a generated Secret is "made at revision 1".
    state = hashlib.sha256(b"generated:1").hexdigest()
    for kind, name in (
        ("Deployment", "celery-harder-worker"),
        ("StatefulSet", "celery-harder-redis"),
    ):
        assert _annotation(generated, kind, name, "checksum/credentials") == state
    given = render_sets(helm, ("redis.auth.password=a1",))
    other = render_sets(helm, ("redis.auth.password=a2",))
    worker = ("Deployment", "celery-harder-worker")
    redis = ("StatefulSet", "celery-harder-redis")
    for obj in (worker, redis):
        a = _annotation(given, *obj, "checksum/credentials")
        assert a != state and a != _annotation(other, *obj, "checksum/credentials")
    # Flower's own credentials roll Flower only; a rename rolls it too.
    flower = ("Deployment", "celery-harder-flower")
    renamed = render_sets(helm, ("flower.basicAuth.username=ops",))
    assert _annotation(renamed, *flower, "checksum/flower-credentials") != _annotation(
        generated, *flower, "checksum/flower-credentials"
    )
    for obj in (worker, redis):
        assert _annotation(renamed, *obj, "checksum/credentials") == state


def test_the_script_hashes_data_the_way_the_templates_do(tmp_path):
    """files/generate-secrets.py's data_sha256 == the templates' `toJson .data | sha256sum`."""
    namespace = {"__name__": "generate_secrets"}
    exec(compile(SCRIPT.read_text(), str(SCRIPT), "exec"), namespace)
    data = {"username": "YWRtaW4=", "password": "cGFzcw==", "basic-auth": "YWRtaW46cGFzcw=="}
    # helm's toJson of a map (Go's json.Marshal: sorted keys, no spaces), as for a Secret's data
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: h\nversion: 0.0.1\n")
    (tmp_path / "templates" / "h.yaml").write_text(
        'value: {{ dict "username" "YWRtaW4=" "password" "cGFzcw==" "basic-auth" '
        '"YWRtaW46cGFzcw==" | toJson | sha256sum }}\n'
    )
    for helm in HELM_LIST:
        out = run_helm(helm, "template", "h", str(tmp_path), "--show-only", "templates/h.yaml")
        assert yaml.safe_load(out.stdout)["value"] == namespace["data_sha256"](data)


@pytest.mark.parametrize("helm", HELM_LIST)
def test_no_api_key_secret_is_made_with_auth_off(helm):
    render = render_sets(helm, ("api.auth.enabled=false",))
    _, _, env = _job_env(render)
    assert "celery-harder-api-keys" not in [s["name"] for s in json.loads(env["SECRETS"])]


def test_the_script_makes_an_api_key_the_api_accepts():
    """files/generate-secrets.py's `api-keys` entry is what the API parses and matches."""
    import base64  # noqa: PLC0415

    from celery_harder_api.auth import SUBMIT, AuthPolicy, decide, parse_api_keys  # noqa: PLC0415

    namespace = {"__name__": "generate_secrets"}
    exec(compile(SCRIPT.read_text(), str(SCRIPT), "exec"), namespace)
    data = namespace["fresh_data"]({"kind": "api-keys", "name": "k"})
    assert set(data) == {"api-key", "api-keys"}
    key = base64.b64decode(data["api-key"]).decode()
    assert len(key) == 40 and key.isalnum()
    (entry,) = parse_api_keys(base64.b64decode(data["api-keys"]).decode())
    assert (entry.name, entry.scopes) == ("admin", {"read", "submit"})
    policy = AuthPolicy(enabled=True, keys=(entry,))
    assert decide(policy, key, SUBMIT).allowed
    assert key not in base64.b64decode(data["api-keys"]).decode()
