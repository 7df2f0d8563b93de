"""T2: the operator against a real kube-apiserver, a real worker and Redis.

Resources go in with kubectl; the operator (a real `kopf run`) dispatches them to the
session's prefork worker; the tests read what kubectl shows.
"""

import json
import selectors
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celery_harder import keys
from celery_harder_operator.resource import workflow_id
from tests.support.examples import EXAMPLES, EXPECTED, FINAL_PHASES
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.operator_process import taskworkflow as tw
from tests.support.polling import wait_until
from tests.support.stack import ApiServer, RedisServer, StackEnv, Worker

FINAL = FINAL_PHASES


@pytest.fixture(scope="module")
def operator(
    kube_api, taskworkflow_crd, stack: StackEnv, worker: Worker
) -> Iterator[OperatorProcess]:
    with running_operator(stack, kube_api.env()) as process:
        yield process


def get(kube_api, ns: str, name: str) -> dict[str, Any]:
    return kube_api.kubectl_json("get", "tw", name, "-n", ns)


def wait_for(kube_api, ns: str, name: str, check, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = get(kube_api, ns, name)
        if check(obj.get("status", {})):
            return obj
        time.sleep(0.2)
    raise AssertionError(f"{ns}/{name} never reached the state: {json.dumps(obj.get('status'))}")


def wait_final(kube_api, ns: str, name: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(kube_api, ns, name, lambda s: s.get("phase") in FINAL, timeout)["status"]


def json_values(stream, deadline: float) -> Iterator[Any]:
    """The JSON values a process writes one after the other, until `deadline`."""
    decoder, text = json.JSONDecoder(), ""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = stream.read1(65536).decode()
            if not chunk:
                return
            text += chunk
            while text := text.lstrip():
                try:
                    value, end = decoder.raw_decode(text)
                except json.JSONDecodeError:
                    break  # the rest of this value is still on its way
                text = text[end:]
                yield value


def watch_final(kube_api, ns: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """The first final status a watch shows; for resources a short TTL deletes soon after.

    A poll can miss the window between the final status and the TTL's delete; a watch
    sees every version of the object in order, the last one before it went included.
    """
    argv = kube_api.client.argv(
        "get", "tw", name, "-n", ns, "--watch", "--output-watch-events", "-o", "json"
    )
    status: Any = None
    deadline = time.monotonic() + timeout
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            for event in json_values(proc.stdout, deadline):
                status = event["object"].get("status", {})
                if status.get("phase") in FINAL:
                    return dict(status)
            if time.monotonic() < deadline:  # the stream ended before the deadline
                raise AssertionError(f"the watch ended: {proc.stderr.read().decode()}")
        finally:
            proc.kill()
    raise AssertionError(f"{ns}/{name} never reached a final phase: {json.dumps(status)}")


def wait_gone(kube_api, ns: str, name: str, timeout: int = 60) -> None:
    kube_api.kubectl("wait", "--for=delete", f"tw/{name}", "-n", ns, f"--timeout={timeout}s",
                     timeout=timeout + 30)  # fmt: skip


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def events(kube_api, ns: str, name: str) -> list[str]:
    items = kube_api.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return [e["reason"] for e in items]


def test_examples_reach_their_phase_with_the_right_results(
    kube_api, operator, kube_namespace
) -> None:
    ns = kube_namespace
    kube_api.kubectl("apply", "-f", str(EXAMPLES), "-n", ns)
    for name, (phase, result) in EXPECTED.items():
        status = wait_final(kube_api, ns, name)
        assert status["phase"] == phase, (name, status)
        if result is not None:
            assert status["result"] == result, name
        assert condition(status, "Succeeded")["status"] == (
            "True" if phase == "Succeeded" else "False"
        )
    failing = get(kube_api, ns, "failing-example")["status"]
    assert "workflow.chain[1] (fail) failed: DeliberateFailure" in failing["message"]
    assert [n["phase"] for n in failing["nodes"]] == ["Succeeded", "Failed", "Skipped"]
    report = get(kube_api, ns, "document-pipeline-example")["status"]["result"]
    assert report["report"].endswith("-k8s-example.txt") and report["lines"] == 4
    table = kube_api.kubectl("get", "tw", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "PROGRESS", "REASON", "STARTED", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["chain-example"][1:4] == ["Succeeded", "3/3", "Succeeded"]
    assert rows["failing-example"][1:4] == ["Failed", "1/3", "Failed"]
    wide = kube_api.kubectl("get", "tw", "chain-example", "-n", ns, "-o", "wide").stdout
    assert (
        "MESSAGE" in wide
        and workflow_id(get(kube_api, ns, "chain-example")["metadata"]["uid"]) in wide
    )
    assert "Dispatched" in events(kube_api, ns, "chain-example")
    chain = get(kube_api, ns, "chain-example")
    # kopf's state, when it keeps any (a handler's retries), is under the project's prefix.
    annotations = chain["metadata"].get("annotations", {})
    foreign = [k for k in annotations if "kopf" in k and not k.startswith("celery-harder.io/")]
    assert foreign == [], annotations
    assert chain["metadata"]["finalizers"] == ["celery-harder.io/cancel-workflow"]
    assert set(chain["status"]) <= {
        "phase", "progress", "workflowId", "message", "observedGeneration", "counts", "nodes",
        "nodesTruncated", "conditions", "startedAt", "finishedAt", "result",
    }  # fmt: skip
    assert "Failed" in events(kube_api, ns, "failing-example")


def test_non_catalog_task_is_turned_away_and_nothing_runs(
    kube_api,
    operator,
    kube_namespace,
    redis_server: RedisServer,
) -> None:
    ns = kube_namespace
    kube_api.apply(
        tw("sneaky", {"chain": [{"task": "add", "args": [1, 1]}, {"task": "os.system"}]}), "-n", ns
    )
    status = wait_final(kube_api, ns, "sneaky")
    assert status["phase"] == "Failed"
    assert condition(status, "Accepted")["reason"] == "ValidationFailed"
    assert condition(status, "Succeeded")["reason"] == "ValidationFailed"
    assert "workflow.chain[1]: unknown task 'os.system'" in status["message"]
    uid = get(kube_api, ns, "sneaky")["metadata"]["uid"]
    assert not redis_server.client().exists(keys.WORKFLOW + workflow_id(uid)), "it was dispatched"
    assert "ValidationFailed" in events(kube_api, ns, "sneaky")


def test_kubectl_delete_cancels_the_run_and_the_resource_goes(
    kube_api,
    operator,
    kube_namespace,
    redis_server: RedisServer,
) -> None:
    ns = kube_namespace
    kube_api.apply(tw("doomed", {"group": [{"task": "sleep", "args": [20]}] * 4}), "-n", ns)
    status = wait_for(kube_api, ns, "doomed", lambda s: s.get("counts", {}).get("running", 0) >= 1)[
        "status"
    ]
    ids = [n["taskId"] for n in status["nodes"]]
    kube_api.kubectl("delete", "tw", "doomed", "-n", ns, "--wait=false")
    wait_gone(kube_api, ns, "doomed", timeout=30)
    redis = redis_server.client()
    client_meta = [f"celery-task-meta-{t}" for t in ids]

    def all_revoked() -> bool:
        metas = [json.loads(m) if m else {} for m in redis.mget(client_meta)]
        return all(m.get("status") == "REVOKED" for m in metas)

    deadline = time.monotonic() + 60
    while not all_revoked():
        assert time.monotonic() < deadline, "leaves were not all revoked"
        time.sleep(0.2)
    # The worker has two processes, each busy for 20 s with a leaf that started; the
    # cancel marks the rest in Redis, and a marked leaf is refused before it starts.
    # (Which two started is not read from the status: it lags the worker by a sync.)
    started = [t for t in ids if redis.exists(keys.DELIVERIES + t)]
    assert 1 <= len(started) <= 2, started


def test_operator_killed_mid_run_resumes_and_every_leaf_runs_once(
    kube_api,
    operator: OperatorProcess,
    kube_namespace,
    redis_server: RedisServer,
) -> None:
    ns = kube_namespace
    kube_api.apply(tw("survivor", {"group": [{"task": "sleep", "args": [1]}] * 6}), "-n", ns)
    wait_for(kube_api, ns, "survivor", lambda s: s.get("phase") == "Running")
    operator.kill()
    operator.start()
    status = wait_final(kube_api, ns, "survivor")
    assert status["phase"] == "Succeeded" and status["progress"] == "6/6"
    redis = redis_server.client()
    runs = [int(redis.get(keys.DELIVERIES + n["taskId"]) or 0) for n in status["nodes"]]
    assert runs == [1] * 6
    assert "Resumed" in events(kube_api, ns, "survivor")


def test_timeout_seconds(kube_api, operator, kube_namespace) -> None:
    ns = kube_namespace
    kube_api.apply(tw("slow", {"task": "sleep", "args": [30]}, timeoutSeconds=1), "-n", ns)
    status = wait_final(kube_api, ns, "slow", timeout=20)
    assert status["phase"] == "Failed"
    assert condition(status, "Succeeded")["reason"] == "Timeout"
    assert "TimedOut" in events(kube_api, ns, "slow")


def test_kopf_writes_no_state_of_its_own_on_a_resource(kube_api, operator, kube_namespace) -> None:
    """The finalizer is the operator's one write to the object; the rest goes to /status.

    kopf's default diff-base annotation and its prefix marker cost a PATCH of the object
    per resource (kopf_state.py); the phase marks a resource handled instead, so the
    next events must not dispatch it again.
    """
    ns = kube_namespace
    kube_api.apply(tw("lean", {"task": "add", "args": [2, 3]}), "-n", ns)
    assert wait_final(kube_api, ns, "lean")["result"] == 5
    meta = get(kube_api, ns, "lean")["metadata"]
    ours = [k for k in meta.get("annotations", {}) if k.startswith("celery-harder.io/")]
    assert ours == [], meta["annotations"]
    assert meta["finalizers"] == ["celery-harder.io/cancel-workflow"]
    # Two more events. kopf handles a resource's events one after the other, so once the
    # second is logged, whatever the first started (a second dispatch) has run.
    needle = f"[{ns}/lean] Handler 'track_phase' succeeded."
    for value in ("1", "2"):
        before = log_count(operator, needle)
        kube_api.kubectl("annotate", "--overwrite", "tw", "lean", "-n", ns, f"touched={value}")
        wait_until(lambda n=before: log_count(operator, needle) > n, 10, what="the event handled")
    assert log_count(operator, f"[{ns}/lean] Handler 'dispatch' succeeded.") == 1


def test_ttl_seconds_after_finished_deletes_the_resource(
    kube_api, operator, kube_namespace
) -> None:
    ns = kube_namespace
    kube_api.apply(
        tw("brief", {"task": "add", "args": [1, 1]}, ttlSecondsAfterFinished=1), "-n", ns
    )
    assert watch_final(kube_api, ns, "brief")["phase"] == "Succeeded"
    wait_gone(kube_api, ns, "brief", timeout=30)


def log_count(operator: OperatorProcess, needle: str) -> int:
    """How many times a line shows in the operator's logs (kopf logs each handler run)."""
    logs = operator.stack.workdir.glob("operator-*.log")
    return sum(log.read_text().count(needle) for log in logs)


def timer_runs(operator: OperatorProcess, ns: str, name: str) -> int:
    """How many times kopf has run the sync timer for one resource (its INFO log line)."""
    return log_count(operator, f"[{ns}/{name}] Timer 'sync' succeeded.")


def test_a_finished_workflow_keeps_no_timer(kube_api, operator, kube_namespace) -> None:
    """The sync timer follows a run and stops at its end, when there is no TTL to keep.

    10,000 finished resources would otherwise cost 5,000 empty wake-ups a second at the
    default 2 s interval. The test watches the operator's log: ticks while the workflow
    runs (the control), none in a window of eight intervals once it is final.
    """
    ns = kube_namespace
    kube_api.apply(tw("finite", {"task": "sleep", "args": [2]}), "-n", ns)
    wait_final(kube_api, ns, "finite")
    final_at = time.monotonic()
    interval = 0.5  # CELERY_HARDER_OPERATOR_POLL_INTERVAL in tests/support/operator_process.py
    # One interval of grace for a tick already under way when the phase became final.
    wait_until(lambda: time.monotonic() > final_at + interval, 10, what="the grace period")
    ticks_while_running = timer_runs(operator, ns, "finite")
    wait_until(lambda: time.monotonic() > final_at + 9 * interval, 30, what="the watch window")
    assert ticks_while_running >= 2, ticks_while_running
    assert timer_runs(operator, ns, "finite") == ticks_while_running, "the timer kept running"


def test_shutdown_stops_a_running_workflow(kube_api, operator, kube_namespace) -> None:
    ns = kube_namespace
    kube_api.apply(tw("halted", {"group": [{"task": "sleep", "args": [3]}] * 4}), "-n", ns)
    wait_for(kube_api, ns, "halted", lambda s: s.get("phase") == "Running")
    kube_api.kubectl("patch", "tw", "halted", "-n", ns, "--type=merge",
                     "-p", json.dumps({"spec": {"shutdown": "Stop"}}))  # fmt: skip
    status = wait_final(kube_api, ns, "halted", timeout=30)
    assert status["phase"] == "Cancelled"
    assert "Shutdown" in events(kube_api, ns, "halted")


def test_a_1000_leaf_workflow_keeps_its_status_small(kube_api, operator, kube_namespace) -> None:
    ns = kube_namespace
    big = {"group": [{"task": "add", "args": [i, i]} for i in range(1000)]}
    kube_api.apply(tw("big", big), "-n", ns)
    status = wait_final(kube_api, ns, "big", timeout=300)
    assert status["phase"] == "Succeeded"
    assert status["counts"]["total"] == 1000 and status["counts"]["succeeded"] == 1000
    assert status["progress"] == "1000/1000"
    assert len(status["nodes"]) == 100 and status["nodesTruncated"] is True
    # Compact JSON, as the API server stores it (kubectl's pretty-printing is not stored).
    obj = get(kube_api, ns, "big")
    size = len(json.dumps(obj, separators=(",", ":")).encode())
    status_size = len(json.dumps(obj["status"], separators=(",", ":")).encode())
    assert size < 256 * 1024, size
    print(f"\n1000-leaf TaskWorkflow: object {size} bytes, status {status_size} bytes")


def test_100_resources_at_once_and_the_same_through_the_api(
    kube_api,
    operator,
    kube_namespace,
    api: ApiServer,
) -> None:
    ns = kube_namespace
    workflow = {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}
    started = time.monotonic()
    kube_api.apply([tw(f"many-{i}", workflow) for i in range(100)], "-n", ns)
    deadline = time.monotonic() + 300
    while True:
        items = kube_api.kubectl_json("get", "tw", "-n", ns)["items"]
        phases = [
            i.get("status", {}).get("phase")
            for i in items
            if i["metadata"]["name"].startswith("many-")
        ]
        if phases.count("Succeeded") == 100:
            break
        assert "Failed" not in phases and time.monotonic() < deadline, phases
        time.sleep(0.5)
    via_operator = time.monotonic() - started

    started = time.monotonic()
    with api.client(timeout=30) as client:
        ids = [
            client.post("/workflows", json={"workflow": workflow}).json()["id"] for _ in range(100)
        ]
        pending = set(ids)
        while pending:
            assert time.monotonic() - started < 300
            pending = {
                w for w in pending if client.get(f"/workflows/{w}").json()["phase"] != "Succeeded"
            }
    via_api = time.monotonic() - started
    print(
        f"\n100 workflows: kubectl apply → all Succeeded {via_operator:.1f}s; "
        f"POST /workflows → all Succeeded {via_api:.1f}s"
    )
