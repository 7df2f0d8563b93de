"""T4-local: the chart as a user installs it, with real pods on the node on this machine.

`helm install` with ci/local-cluster-values.yaml (the `release` fixture), then what a
user does first: wait for the pods, `helm test`, the seed's endpoints through the API's
Service with the generated API key, the API's and Flower's logins, and
`kubectl apply -f k8s/examples/`.
"""

from typing import Any

import httpx
import pytest

from celery_harder_dev.cluster import LocalCluster
from tests.support.examples import EXAMPLES, EXPECTED, FINAL_PHASES
from tests.support.polling import poll_json, wait_done, wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4


def submit(client: httpx.Client, path: str, body: object) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def add(*args: int) -> dict[str, Any]:
    return {"task": "add", "args": list(args)}


def test_a_second_up_finds_the_node_running(local_cluster: LocalCluster) -> None:
    pids = {name: d.pid for name, d in local_cluster.daemons().items() if d}
    assert LocalCluster().up() == local_cluster.layout.kubeconfig
    assert {name: d.pid for name, d in local_cluster.daemons().items() if d} == pids
    assert len(pids) == 7


def test_every_workload_is_ready_and_no_container_restarted(release: Release) -> None:
    def workloads() -> list[dict[str, Any]]:
        return [*release.get("deployments")["items"], *release.get("statefulsets")["items"]]

    def not_ready() -> list[str]:
        return [
            w["metadata"]["name"]
            for w in workloads()
            if w["status"].get("readyReplicas", 0) != w["spec"].get("replicas", 1)
            or w["status"].get("updatedReplicas", 0) != w["spec"].get("replicas", 1)
        ]

    names = {w["metadata"]["name"] for w in workloads()}
    assert {release.component(c) for c in ("api", "worker", "flower", "operator", "redis")} <= names
    # Earlier tests may have left KEDA mid-way through a scale-in: wait for it to settle.
    wait_until(lambda: not not_ready(), 180, 1, "every Deployment and StatefulSet Ready")
    assert all(w["spec"].get("replicas", 1) >= 1 for w in workloads())
    assert set(release.restarts().values()) == {0}, release.describe()


def test_redis_keeps_its_data_on_a_bound_volume(release: Release) -> None:
    claims = release.get("pvc")["items"]
    assert claims, "the chart's Redis asks for a PersistentVolumeClaim"
    assert {c["status"]["phase"] for c in claims} == {"Bound"}
    assert {c["spec"]["storageClassName"] for c in claims} == {"local-path"}


def test_helm_test_passes(release: Release) -> None:
    release.helm("test", release.name, "-n", release.namespace, "--timeout", "5m")


def test_seed_endpoints_through_the_api_service(release: Release) -> None:
    with release.api() as client:
        added = submit(client, "/add", {"x": 2, "y": 3})["task_id"]
        assert wait_done(client, added, timeout=60)["result"] == 5
        info_id = submit(client, "/test-request-info", {"data": {"k": "v"}})["task_id"]
        info = wait_done(client, info_id, timeout=60)["result"]
        assert (info["task_id"], info["kwargs"]) == (info_id, {"data": {"k": "v"}})
        runs = {
            "/chain": ({"steps": [add(2, 2), add(4), {"task": "mul", "args": [3]}]}, 24),
            "/group": ({"tasks": [add(i, i) for i in range(5)]}, [0, 2, 4, 6, 8]),
            "/chord": ({"header": [add(i, i) for i in range(10)], "body": {"task": "xsum"}}, 90),
        }
        for path, (body, result) in runs.items():
            workflow = submit(client, path, body)["id"]
            status = poll_json(
                client, f"/workflows/{workflow}", lambda b: b["phase"] in FINAL_PHASES, 90
            )
            assert (path, status["phase"], status["result"]) == (path, "Succeeded", result)


def test_a_document_report_is_written_on_the_worker_volume(release: Release) -> None:
    text = "Celery on Kubernetes\nthe worker writes the report\nthe end\n"
    with release.api() as client:
        analysed = submit(client, "/tasks", {"task": "documents.analyse", "args": [text]})
        stats = wait_done(client, analysed["task_id"], timeout=60)["result"]
        body = {"task": "documents.write_report", "kwargs": {"stats": stats, "name": "t4"}}
        report_id = submit(client, "/tasks", body)["task_id"]
        report = wait_done(client, report_id, timeout=60)["result"]["report"]
    assert report == f"output_{report_id[:8]}-t4.txt"
    found = {}
    for pod in release.pods("worker"):
        name = pod["metadata"]["name"]
        listing = release.exec(name, "ls", "/data")
        if report in listing.split():
            found[name] = release.exec(name, "cat", f"/data/{report}")
    assert len(found) == 1, f"{report} on {sorted(found)}"
    assert "the: 3" in next(iter(found.values()))


def test_the_api_refuses_a_request_without_its_key(release: Release) -> None:
    with httpx.Client(base_url=release.api_url, timeout=10) as client:
        assert client.get("/tasks").status_code == 401
        assert client.post("/add", json={"x": 1, "y": 1}).status_code == 401
        wrong = client.get("/tasks", headers={"X-API-Key": "not-the-key"})
        assert wrong.status_code == 401, wrong.text
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
    with release.api() as client:
        assert client.get("/tasks").status_code == 200
    # The API pod holds the digest only, never the key itself.
    deployment = release.get("deployment", release.component("api"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ref = next(e for e in container["env"] if e["name"] == "CELERY_HARDER_API_KEYS")
    assert ref["valueFrom"]["secretKeyRef"]["key"] == "api-keys"
    entries = release.secret(release.component("api-keys"), "api-keys")
    assert release.api_key not in entries and entries.startswith("admin:read,submit:")


def test_flower_refuses_a_request_without_credentials(release: Release) -> None:
    secret = release.component("flower")
    user = release.secret(secret, "username")
    password = release.secret(secret, "password")
    with httpx.Client(base_url=release.flower_url, timeout=10) as client:
        assert client.get("/api/workers").status_code == 401
        assert client.get("/api/workers", auth=(user, "wrong")).status_code == 401
        answer = client.get("/api/workers", auth=(user, password))
        assert answer.status_code == 200, answer.text
        # refresh=1: Flower asks the workers (a broadcast over Redis) instead of its cache.
        workers = client.get("/api/workers?refresh=1", auth=(user, password), timeout=30)
        assert workers.status_code == 200 and workers.json(), workers.text
        assert client.get("/healthcheck").status_code == 200


def test_examples_reach_their_documented_phase_through_the_operator_pod(
    release: Release,
) -> None:
    release.kubectl("apply", "-n", release.namespace, "-f", str(EXAMPLES))

    def final(name: str) -> dict[str, Any] | None:
        body = release.get("tw", name)
        status: dict[str, Any] = body.get("status", {})
        return status if status.get("phase") in FINAL_PHASES else None

    try:
        for name, (phase, result) in EXPECTED.items():
            status = wait_until(lambda n=name: final(n), 120, what=f"{name} final")
            assert status["phase"] == phase, (name, status)
            if result is not None:
                assert status["result"] == result, (name, status)
        table = release.kubectl("get", "tw", "-n", release.namespace).stdout
        print(table)
        assert "chain-example" in table and "3/3" in table
    finally:
        release.kubectl("delete", "-n", release.namespace, "-f", str(EXAMPLES), "--wait=false")
