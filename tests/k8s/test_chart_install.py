"""T2: `helm install` of the chart into the real kube-apiserver, helm 4 and helm 3.

KEDA's and the Prometheus Operator's CRDs are loaded from their Go modules (fetched by
scripts/install-test-deps.sh), so the ScaledObject, TriggerAuthentication,
ServiceMonitor and PrometheusRule objects are checked by the API server too.

No kube-controller-manager or kubelet runs here, so nothing would ever run the
chart's password hook Job, and Helm waits for a hook Job to complete. `HookJobs`
stands in for the Job controller and the kubelet: when a `<release>-secrets` Job
appears, it runs the Job's own container command (the chart's generate-secrets.py)
as a local process with the Job's environment, a token of the Job's ServiceAccount
(TokenRequest) and the API server's CA, so the script talks to the real API server
under the hook Role's RBAC; then it writes the Job's status (Complete or Failed) the
way the Job controller would. What is real: Helm's hook ordering, waiting and
delete policies, the API server, RBAC, the script. What is not: the pod.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from celery_harder_api.auth import SUBMIT, AuthPolicy, decide, parse_api_keys
from tests.chart.chartlib import CASE_FILES, CHART, helm_binary

GOMODCACHE = Path.home() / ".cache" / "celery-harder" / "go" / "mod"
UPSTREAM_CRDS = [
    "github.com/kedacore/keda/v2@*/config/crd/bases/keda.sh_scaledobjects.yaml",
    "github.com/kedacore/keda/v2@*/config/crd/bases/keda.sh_triggerauthentications.yaml",
    "github.com/prometheus-operator/prometheus-operator@*/example/prometheus-operator-crd/"
    "monitoring.coreos.com_servicemonitors.yaml",
    "github.com/prometheus-operator/prometheus-operator@*/example/prometheus-operator-crd/"
    "monitoring.coreos.com_prometheusrules.yaml",
]
CASES = [
    "defaults", "keda-off", "external-redis", "monitoring-on", "auth-on", "scale-to-zero",
    "ci-local-cluster", "pools", "pools-keda-off",
]  # fmt: skip
RELEASE = "celery-harder"
HOOK_JOB = f"{RELEASE}-secrets"
HOOK_OBJECTS = ["serviceaccount", "role", "rolebinding", "job"]
# Cases whose Redis password is generated; external-redis gives one but leaves Flower's empty.
GENERATED_CASES = {
    "defaults", "keda-off", "monitoring-on", "scale-to-zero", "ci-local-cluster",
    "pools", "pools-keda-off",
}  # fmt: skip
HOOK_CASES = GENERATED_CASES | {"external-redis"}


@pytest.fixture(scope="module")
def upstream_crds(kube_api, taskworkflow_crd) -> Iterator[None]:
    for pattern in UPSTREAM_CRDS:
        found = sorted(GOMODCACHE.glob(pattern))
        if not found:
            pytest.fail(f"{pattern} not in {GOMODCACHE}: run scripts/install-test-deps.sh")
        # Server-side: these CRDs are too large for kubectl's last-applied annotation.
        kube_api.kubectl("apply", "--server-side", "-f", str(found[-1]))
        kube_api.wait_for_crd(yaml.safe_load(found[-1].read_text())["metadata"]["name"])
    kube_api.kubectl("create", "namespace", "monitoring", check=False)  # dashboards go there
    yield


def helm(kube_api, which: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(which), *args, "--kubeconfig", str(kube_api.kubeconfig)],
        capture_output=True, text=True, timeout=300, check=False, env=kube_api.env(),
    )  # fmt: skip


# ------------------------------------------------------------------ hook Jobs


class HookJobs:
    """Runs the chart's password hook Jobs of one namespace (see the module docstring)."""

    def __init__(self, kube_api, namespace: str) -> None:
        self.kube = kube_api
        self.namespace = namespace
        self.runs: list[dict] = []
        self.errors: list[str] = []
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "HookJobs":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self.kube.kubectl_json("get", "jobs", "-n", self.namespace)["items"]
                for job in jobs:
                    uid = job["metadata"]["uid"]
                    if job["metadata"]["name"] == HOOK_JOB and uid not in self._done:
                        self._done.add(uid)
                        self._run(job)
            except Exception as exc:  # noqa: BLE001  (reported by the test, not lost in a thread)
                self.errors.append(repr(exc))
            self._stop.wait(0.2)

    def _run(self, job: dict) -> None:
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["command"][:2] == ["python", "-c"]
        env = {e["name"]: e["value"] for e in container["env"]}  # plain values only
        account = spec["serviceAccountName"]
        token = self.kube.kubectl(
            "create", "token", account, "-n", self.namespace, "--duration=10m"
        ).stdout.strip()
        server = urlsplit(self.kube.server)
        with tempfile.TemporaryDirectory(prefix="sa-") as sa_dir:
            Path(sa_dir, "token").write_text(token)
            Path(sa_dir, "namespace").write_text(self.namespace)
            shutil.copy(self.kube.pki / "ca.crt", Path(sa_dir, "ca.crt"))
            proc = subprocess.run(
                [sys.executable, "-c", container["command"][2]],
                env={
                    **env,
                    "PATH": "/usr/bin:/bin",
                    "SERVICEACCOUNT_DIR": sa_dir,
                    "KUBERNETES_SERVICE_HOST": server.hostname or "",
                    "KUBERNETES_SERVICE_PORT": str(server.port),
                },
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
        self.runs.append(
            {"revision": env["REVISION"], "rc": proc.returncode, "out": proc.stdout + proc.stderr}
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        def cond(kind: str, reason: str) -> dict:
            return {"type": kind, "status": "True", "reason": reason, "message": "T2 stand-in",
                    "lastTransitionTime": now, "lastProbeTime": now}  # fmt: skip

        if proc.returncode == 0:
            status = {"startTime": now, "completionTime": now, "succeeded": 1,
                      "conditions": [cond("SuccessCriteriaMet", "CompletionsReached"),
                                     cond("Complete", "CompletionsReached")]}  # fmt: skip
        else:
            status = {"startTime": now, "failed": 1,
                      "conditions": [cond("FailureTarget", "BackoffLimitExceeded"),
                                     cond("Failed", "BackoffLimitExceeded")]}  # fmt: skip
        self.kube.kubectl(
            "patch", "job", job["metadata"]["name"], "-n", self.namespace,
            "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
        )  # fmt: skip


@contextmanager
def namespace_with_hooks(kube_api) -> Iterator[tuple[str, HookJobs]]:
    namespace = kube_api.create_namespace(f"chart-{uuid.uuid4().hex[:8]}")
    with HookJobs(kube_api, namespace) as hooks:
        yield namespace, hooks
    assert not hooks.errors, hooks.errors


def secret(kube_api, namespace: str, name: str) -> dict | None:
    got = kube_api.kubectl("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def decoded(obj: dict, key: str) -> str:
    return base64.b64decode(obj["data"][key]).decode()


def pod_annotations(kube_api, namespace: str, kind: str, name: str) -> dict:
    obj = kube_api.kubectl_json("get", kind, name, "-n", namespace)
    return obj["spec"]["template"]["metadata"]["annotations"]


def checksums(kube_api, namespace: str) -> dict:
    worker = pod_annotations(kube_api, namespace, "deployment", f"{RELEASE}-worker")
    redis = pod_annotations(kube_api, namespace, "statefulset", f"{RELEASE}-redis")
    flower = pod_annotations(kube_api, namespace, "deployment", f"{RELEASE}-flower")
    api = pod_annotations(kube_api, namespace, "deployment", f"{RELEASE}-api")
    return {
        "worker": worker["checksum/credentials"],
        "redis": redis["checksum/credentials"],
        "flower": flower["checksum/flower-credentials"],
        "api-keys": api["checksum/api-keys"],
    }


def hook_objects_left(kube_api, namespace: str) -> list[str]:
    return [
        kind
        for kind in HOOK_OBJECTS
        if kube_api.kubectl("get", kind, HOOK_JOB, "-n", namespace, check=False).returncode == 0
    ]


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("which", ["helm4", "helm3"])
@pytest.mark.parametrize("case", CASES)
def test_helm_install_is_accepted_by_the_api_server(
    kube_api,
    upstream_crds,
    which: str,
    case: str,
) -> None:
    with namespace_with_hooks(kube_api) as (namespace, hooks):
        installed = helm(
            kube_api, which, "install", RELEASE, str(CHART), "-n", namespace,
            "-f", str(CASE_FILES[case]), "--timeout", "120s",
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr + "\n".join(r["out"] for r in hooks.runs)
        manifest = helm(kube_api, which, "get", "manifest", RELEASE, "-n", namespace)
        assert manifest.returncode == 0, manifest.stderr
        objects = [d for d in yaml.safe_load_all(manifest.stdout) if d]
        assert len(objects) >= 10, f"{case}: only {len(objects)} objects"
        for obj in objects:
            ns = obj["metadata"].get("namespace", namespace)
            got = kube_api.kubectl(
                "get", obj["kind"], obj["metadata"]["name"], "-n", ns, "-o", "name", check=False
            )
            assert got.returncode == 0, (
                f"{case}: {obj['kind']}/{obj['metadata']['name']}: {got.stderr}"
            )
        kinds = {o["kind"] for o in objects}
        if case in ("defaults", "scale-to-zero"):
            assert {"ScaledObject", "TriggerAuthentication"} <= kinds
        if case == "monitoring-on":
            assert {"ServiceMonitor", "PrometheusRule"} <= kinds
        # Generated passwords: made by the hook before the pods' objects, never in the manifest.
        assert [r["rc"] for r in hooks.runs] == ([0] if case in HOOK_CASES else [])
        if case in HOOK_CASES:
            flower_secret = secret(kube_api, namespace, f"{RELEASE}-flower")
            assert flower_secret and len(decoded(flower_secret, "password")) == 24
            keys = secret(kube_api, namespace, f"{RELEASE}-api-keys")
            assert keys, f"{case}: no API key Secret"
            (entry,) = parse_api_keys(decoded(keys, "api-keys"))
            policy = AuthPolicy(enabled=True, keys=(entry,))
            assert decide(policy, decoded(keys, "api-key"), SUBMIT).allowed
        if case in GENERATED_CASES:
            assert "kind: Secret" not in manifest.stdout
            redis_secret = secret(kube_api, namespace, f"{RELEASE}-redis")
            assert redis_secret and len(decoded(redis_secret, "redis-password")) == 32
            assert hook_objects_left(kube_api, namespace) == [], "hook-succeeded deletes them"
        uninstalled = helm(kube_api, which, "uninstall", RELEASE, "-n", namespace)
        assert uninstalled.returncode == 0, uninstalled.stderr
        if case in GENERATED_CASES:
            assert secret(kube_api, namespace, f"{RELEASE}-redis"), "uninstall keeps it"


def upgrader(kube_api, which: str, namespace: str, hooks: HookJobs):
    """`helm upgrade --install` with --set pairs, asserting the hook ran and left nothing."""

    def upgrade(*sets: str) -> None:
        args = [a for s in sets for a in ("--set", s)]
        done = helm(kube_api, which, "upgrade", "--install", RELEASE, str(CHART),
                    "-n", namespace, "--timeout", "120s", *args)  # fmt: skip
        assert done.returncode == 0, done.stderr + "\n".join(r["out"] for r in hooks.runs)
        assert hooks.runs[-1]["rc"] == 0, hooks.runs[-1]["out"]
        assert hook_objects_left(kube_api, namespace) == []

    return upgrade


@pytest.mark.parametrize("which", ["helm4", "helm3"])
def test_generated_passwords_are_made_once_and_roll_pods_only_when_they_change(
    kube_api, upstream_crds, which: str
) -> None:
    redis_name, flower_name = f"{RELEASE}-redis", f"{RELEASE}-flower"
    with namespace_with_hooks(kube_api) as (namespace, hooks):
        upgrade = upgrader(kube_api, which, namespace, hooks)

        upgrade()  # install, revision 1
        redis1 = secret(kube_api, namespace, redis_name)
        flower1 = secret(kube_api, namespace, flower_name)
        password = decoded(redis1, "redis-password")
        assert password.isalnum() and len(password) == 32
        assert decoded(flower1, "basic-auth") == "admin:" + decoded(flower1, "password")
        meta = redis1["metadata"]
        assert meta["annotations"]["celery-harder.io/created-at-revision"] == "1"
        assert meta["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
        assert "meta.helm.sh/release-name" not in meta["annotations"]
        assert meta["labels"]["celery-harder.io/release"] == RELEASE
        assert "app.kubernetes.io/instance" not in meta["labels"]
        # What the templates hash for an unchanged generated Secret (Python == Go's toJson).
        assert (
            meta["annotations"]["celery-harder.io/data-sha256"]
            == hashlib.sha256(
                json.dumps(redis1["data"], sort_keys=True, separators=(",", ":")).encode()
            ).hexdigest()
        )
        sums1 = checksums(kube_api, namespace)
        generated = hashlib.sha256(b"generated:1").hexdigest()
        assert sums1["worker"] == sums1["redis"] == sums1["api-keys"] == generated
        api_keys1 = secret(kube_api, namespace, f"{RELEASE}-api-keys")

        upgrade()  # revision 2: the hook runs again and changes nothing; no pod rolls
        assert [r["revision"] for r in hooks.runs] == ["1", "2"]
        assert secret(kube_api, namespace, redis_name)["data"] == redis1["data"]
        assert secret(kube_api, namespace, flower_name)["data"] == flower1["data"]
        assert secret(kube_api, namespace, f"{RELEASE}-api-keys")["data"] == api_keys1["data"]
        assert checksums(kube_api, namespace) == sums1, "lookup must see the Secret as made"

        upgrade("flower.basicAuth.username=ops")  # rename: same password, Flower rolls alone
        flower3 = secret(kube_api, namespace, flower_name)
        assert decoded(flower3, "password") == decoded(flower1, "password")
        assert decoded(flower3, "basic-auth") == "ops:" + decoded(flower1, "password")
        sums3 = checksums(kube_api, namespace)
        assert sums3["flower"] != sums1["flower"]
        assert (sums3["worker"], sums3["redis"]) == (sums1["worker"], sums1["redis"])

        # A deleted API key Secret is made again with a new key, and only the API rolls.
        kube_api.kubectl("delete", "secret", f"{RELEASE}-api-keys", "-n", namespace)
        upgrade("flower.basicAuth.username=ops")
        api_keys4 = secret(kube_api, namespace, f"{RELEASE}-api-keys")
        assert decoded(api_keys4, "api-key") != decoded(api_keys1, "api-key")
        sums4 = checksums(kube_api, namespace)
        assert sums4["api-keys"] != sums3["api-keys"]
        assert {k: v for k, v in sums4.items() if k != "api-keys"} == {
            k: v for k, v in sums3.items() if k != "api-keys"
        }

        assert helm(kube_api, which, "uninstall", RELEASE, "-n", namespace).returncode == 0
        assert secret(kube_api, namespace, redis_name) and secret(kube_api, namespace, flower_name)


@pytest.mark.parametrize("which", ["helm4", "helm3"])
def test_a_deleted_or_edited_generated_password_is_remade_or_kept_and_rolls_the_pods(
    kube_api, upstream_crds, which: str
) -> None:
    redis_name, flower_name = f"{RELEASE}-redis", f"{RELEASE}-flower"
    with namespace_with_hooks(kube_api) as (namespace, hooks):
        upgrade = upgrader(kube_api, which, namespace, hooks)
        upgrade("flower.basicAuth.username=ops")  # revision 1
        password = decoded(secret(kube_api, namespace, redis_name), "redis-password")
        sums1 = checksums(kube_api, namespace)
        # Rotation: delete the Secret; the next upgrade makes a new one and rolls everything.
        kube_api.kubectl("delete", "secret", redis_name, "-n", namespace)
        upgrade("flower.basicAuth.username=ops")  # revision 2
        redis2 = secret(kube_api, namespace, redis_name)
        assert decoded(redis2, "redis-password") != password
        assert redis2["metadata"]["annotations"]["celery-harder.io/created-at-revision"] == "2"
        sums2 = checksums(kube_api, namespace)
        assert sums2["worker"] == sums2["redis"] != sums1["worker"]
        upgrade("flower.basicAuth.username=ops")  # and then stays put
        assert checksums(kube_api, namespace) == sums2

        # A Secret edited by hand rolls the pods on the next upgrade.
        kube_api.kubectl(
            "patch", "secret", redis_name, "-n", namespace, "--type=merge",
            "-p", json.dumps({"stringData": {"redis-password": "handMade123"}}),
        )  # fmt: skip
        upgrade("flower.basicAuth.username=ops")
        assert decoded(secret(kube_api, namespace, redis_name), "redis-password") == "handMade123"
        assert checksums(kube_api, namespace)["worker"] != sums2["worker"]

        assert helm(kube_api, which, "uninstall", RELEASE, "-n", namespace).returncode == 0
        assert secret(kube_api, namespace, redis_name) and secret(kube_api, namespace, flower_name)


@pytest.mark.parametrize("which", ["helm4", "helm3"])
def test_dropping_a_password_from_values_keeps_the_password_in_use(
    kube_api, upstream_crds, which: str
) -> None:
    """The Secret Helm rendered leaves the release; the hook keeps it from being deleted."""
    name = f"{RELEASE}-redis"
    with namespace_with_hooks(kube_api) as (namespace, hooks):
        first = helm(kube_api, which, "install", RELEASE, str(CHART), "-n", namespace,
                     "--set", "redis.auth.password=given1", "--timeout", "120s")  # fmt: skip
        assert first.returncode == 0, first.stderr
        assert (
            secret(kube_api, namespace, name)["metadata"]["annotations"][
                "meta.helm.sh/release-name"
            ]
            == RELEASE
        )
        # --reset-values: without it an upgrade with no values reuses the last ones.
        second = helm(kube_api, which, "upgrade", RELEASE, str(CHART), "-n", namespace,
                      "--reset-values", "--timeout", "120s")  # fmt: skip
        assert second.returncode == 0, second.stderr + "\n".join(r["out"] for r in hooks.runs)
        kept = secret(kube_api, namespace, name)
        assert kept, "the upgrade deleted the Secret the running pods use" + repr(hooks.runs)
        assert decoded(kept, "redis-password") == "given1"
        assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        manifest = helm(kube_api, which, "get", "manifest", RELEASE, "-n", namespace).stdout
        assert name not in [
            d["metadata"]["name"]
            for d in yaml.safe_load_all(manifest)
            if d and d["kind"] == "Secret"
        ]
