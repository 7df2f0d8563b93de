"""B6, B6b, B6c, B6d: the operator measured on the T2 control plane (kube-apiserver + etcd).

The harness's operator group (`python -m bench --only B6`, `run` below) and the
standalone `python -m bench.operator_rows` (one repetition of each row, printed as
JSON, with before/after options) both measure with the functions here. Everything is
real: the control plane the T2 tests build, redis-server, a prefork worker, uvicorn,
and `kopf run` with the operator's default settings (the 2 s poll interval users get,
unless `poll_interval` says otherwise), signed in as it is in a cluster: with the
chart's ServiceAccount token and RBAC, not the control plane's admin certificate.

- B6: N small TaskWorkflows created one after the other (sequential POSTs to the API
  server) until all read Succeeded, against the same N sent one after the other to
  `POST /workflows` until all read Succeeded: like for like, both over HTTP.
- B6b: TaskWorkflows completed per minute: N created through the API server at once,
  the time from the first create to the last Succeeded.
- B6c: a 100-step chain TaskWorkflow against a one-task TaskWorkflow, created to
  Succeeded: (chain - one) / (steps - 1), in ms per step.
- B6d: the kopf process's CPU time (utime + stime from /proc/<pid>/stat) over a fixed
  window with no TaskWorkflows, then over the same window with N finished ones
  present (created, finished, and handled by the operator before the window opens).

Two more views of B6's operator side, for `python -m bench.operator_rows` only:
`B6-writes`, the API server's writes per TaskWorkflow from its request counter
(tests/k8s/test_operator_rows.py holds the operator to them), and `--apiserver-profile
PATH`, the API server's Go CPU profile over B6 run back to back.

The sizes are bench/sizes.py's. The `tiny` size runs in seconds (`make test`: the
harness's tiny run and tests/k8s/test_operator_rows.py); it keeps the code working and
proves nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from threading import Thread
from typing import Any

import httpx

from bench.sizes import SIZES, Size
from bench.stats import Figure, Results, Row, check, fmt, ratios
from celery_harder.settings import Settings
from celery_harder_dev.stack import (
    ApiServer,
    RedisServer,
    StackEnv,
    running_api,
    running_redis,
    running_worker,
)
from tests.support.kube import REPO_ROOT, ControlPlane
from tests.support.operator_process import OperatorProcess, running_operator
from tests.support.operator_process import taskworkflow as tw
from tests.support.operator_rbac import as_chart_operator

GROUP_PATH = "/apis/celery-harder.io/v1alpha1"
CRDS = REPO_ROOT / "charts" / "celery-harder" / "crds"
CRD_NAMES = ("taskworkflows.celery-harder.io", "crontaskworkflows.celery-harder.io")
SMALL = {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}
RUN_TIMEOUT = 600.0
POLL = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OPERATOR_NAMESPACE = "celery-harder-system"
ARGO_DEFAULT, ARGO_TUNED = 270.0, 810.0  # workflows per minute, Argo Workflows' published figures
LABEL = re.compile(r'(\w+)="([^"]*)"')
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


class Kube:
    """A small HTTP client of the control plane's API server (admin certificate)."""

    def __init__(self, cp: ControlPlane) -> None:
        ctx = ssl.create_default_context(cafile=str(cp.pki / "ca.crt"))
        ctx.load_cert_chain(str(cp.pki / "admin.crt"), str(cp.pki / "admin.key"))
        self.http = httpx.Client(base_url=cp.server, verify=ctx, timeout=60)

    def tw_path(self, ns: str, name: str = "") -> str:
        base = f"{GROUP_PATH}/namespaces/{ns}/taskworkflows"
        return f"{base}/{name}" if name else base

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.http.post("/api/v1/namespaces", json=body).raise_for_status()
        return name

    def create(self, ns: str, manifest: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.tw_path(ns), json=manifest)
        response.raise_for_status()
        return dict(response.json())

    def items(self, ns: str) -> list[dict[str, Any]]:
        response = self.http.get(self.tw_path(ns))
        response.raise_for_status()
        return list(response.json()["items"])

    def wait_succeeded(
        self, ns: str, total: int, what: str, name: str = "", timeout: float = RUN_TIMEOUT
    ) -> None:
        """Watch until `total` TaskWorkflows in `ns` are Succeeded, as `kubectl wait` does.

        A watch costs the API server one stream; a LIST or GET every 50 ms costs it a
        read from etcd and a fresh encoding each time, on the cores the operator and the
        worker being measured use.
        """
        params = {"watch": "1"}
        if name:
            params["fieldSelector"] = f"metadata.name={name}"
        succeeded: set[str] = set()
        deadline = time.monotonic() + timeout
        # The API server ends a watch when it likes (its timeout, a slow reader): a new
        # one without a resourceVersion starts with every resource's current state.
        while (left := deadline - time.monotonic()) > 0:
            params["timeoutSeconds"] = str(max(1, int(left)))
            read = httpx.Timeout(60, read=left)
            with self.http.stream("GET", self.tw_path(ns), params=params, timeout=read) as stream:
                stream.raise_for_status()
                for line in stream.iter_lines():
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: watch again from the current state
                    phase = event["object"].get("status", {}).get("phase")
                    if phase in ("Failed", "Cancelled"):
                        raise AssertionError(f"{ns}: a TaskWorkflow ended {phase}")
                    if phase == "Succeeded":  # final: a later event cannot take it back
                        succeeded.add(event["object"]["metadata"]["name"])
                        if len(succeeded) >= total:
                            return
        raise TimeoutError(f"{what}: {len(succeeded)}/{total} after {timeout:.0f}s")

    def metrics(self) -> str:
        """The API server's own /metrics."""
        response = self.http.get("/metrics")
        response.raise_for_status()
        return response.text

    def close(self) -> None:
        self.http.close()


def chain_of(steps: int) -> dict[str, Any]:
    rest = [{"task": "add", "args": [1]}] * (steps - 1)
    return {"chain": [{"task": "add", "args": [1, 1]}, *rest]}


@dataclass
class OperatorRig:
    """The control plane, a worker, the API and the operator, on one Redis."""

    cp: ControlPlane
    kube: Kube
    stack: StackEnv
    api: ApiServer
    operator: OperatorProcess

    def operator_pid(self) -> int:
        assert self.operator.process is not None
        pid: int = self.operator.process.pid
        return pid


@contextmanager
def operator_rig(
    server: RedisServer,
    workdir: Path,
    *,
    poll_interval: float | None = None,
    concurrency: int = 2,
    db: int = 0,
    operator_env: dict[str, str] | None = None,
    profiling: bool = False,
) -> Iterator[OperatorRig]:
    """Start everything; `poll_interval` None keeps the operator's default (2 s).

    `profiling` turns on the API server's /debug/pprof (the T2 control plane has it off).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stack = StackEnv(broker_url=server.url(db), workdir=workdir)
    with ExitStack() as stack_of:
        extra = ("--profiling=true",) if profiling else ()
        cp = ControlPlane(workdir=workdir / "kube", extra_apiserver_args=extra)
        cp.start()
        stack_of.callback(cp.stop)
        for name in CRD_NAMES:
            cp.kubectl("apply", "-f", str(CRDS / f"{name}.yaml"))
            cp.wait_for_crd(name)
        kube = Kube(cp)
        stack_of.callback(kube.close)
        stack_of.enter_context(running_worker(stack, "bench-op", concurrency=concurrency))
        api = stack_of.enter_context(running_api(stack))
        env = dict(operator_env or {})
        # tests/support's operator sets 0.5 s for quick tests; a benchmark runs the default.
        interval = poll_interval if poll_interval is not None else default_poll_interval()
        env["CELERY_HARDER_OPERATOR_POLL_INTERVAL"] = str(interval)
        # The pod's identity: a token (the API server caches its review) and the chart's
        # RBAC; the admin certificate would cost an x509 verification per request.
        identity = as_chart_operator(cp, OPERATOR_NAMESPACE, workdir / "operator.kubeconfig")
        operator = stack_of.enter_context(running_operator(stack, identity, env))
        yield OperatorRig(cp, kube, stack, api, operator)


def default_poll_interval() -> float:
    return float(Settings.model_fields["operator_poll_interval"].default)


def wait_all(count: Callable[[], int], total: int, what: str, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (seen := count()) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {seen}/{total} after {timeout:.0f}s")
        time.sleep(POLL)


# ---------------------------------------------------------------- B6


def created_until_succeeded(rig: OperatorRig, ns: str, n: int, kubectl: bool = False) -> float:
    """Seconds from the first of N small TaskWorkflows created in `ns` to the last Succeeded."""
    manifests = [tw(f"b6-{i}", SMALL) for i in range(n)]
    started = time.monotonic()
    if kubectl:
        rig.cp.apply(manifests, "-n", ns)
    else:
        for manifest in manifests:
            rig.kube.create(ns, manifest)
    rig.kube.wait_succeeded(ns, n, "B6 operator")
    return time.monotonic() - started


def b6(rig: OperatorRig, n: int, kubectl: bool = False) -> dict[str, float]:
    """N TaskWorkflows created → all Succeeded, against N by POST /workflows → all Succeeded.

    Both sides send their N one after the other over HTTP: N creates to the API server,
    N POSTs to the API. With `kubectl` the N go in as one `kubectl apply` of N documents
    instead, which adds kubectl's own start and discovery (0.5-1 s here) to the figure.
    """
    via_operator = created_until_succeeded(rig, rig.kube.namespace("b6"), n, kubectl)

    started = time.monotonic()
    with rig.api.client(timeout=30) as client:
        ids = [client.post("/workflows", json={"workflow": SMALL}).json()["id"] for _ in range(n)]
        pending = set(ids)

        def done() -> int:
            nonlocal pending
            pending = {
                w for w in pending if client.get(f"/workflows/{w}").json()["phase"] != "Succeeded"
            }
            return n - len(pending)

        wait_all(done, n, "B6 API")
    via_api = time.monotonic() - started
    return {"operator_s": via_operator, "api_s": via_api, "ratio": via_operator / via_api}


def request_counts(metrics: str) -> dict[str, float]:
    """`apiserver_request_total` from the API server's /metrics, by "VERB resource[/sub]"."""
    counts: defaultdict[str, float] = defaultdict(float)
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(LABEL.findall(line))
        sub = labels.get("subresource", "")
        counts[f"{labels['verb']} {labels['resource']}{'/' + sub if sub else ''}"] += float(
            line.rsplit(" ", 1)[1]
        )
    return dict(counts)


def writes_per_resource(
    before: dict[str, float], after: dict[str, float], n: int
) -> dict[str, float]:
    """The writes on TaskWorkflows and Events between two readings, per TaskWorkflow."""
    writes = {}
    for key, count in after.items():
        verb, _, target = key.partition(" ")
        added = count - before.get(key, 0.0)
        if verb in WRITE_VERBS and target.split("/")[0] in ("taskworkflows", "events") and added:
            writes[key] = added / n
    return writes


def b6_writes(rig: OperatorRig, n: int, warm_up: bool = True) -> dict[str, float]:
    """B6's operator side, counted: the API server's writes per small TaskWorkflow.

    Counted on a control plane of the rig's own: the request counter has no namespace,
    so any other writer (another test's operator) would be counted too. After a warm-up
    (unless the rig is warm already), as the harness's B6: a cold operator's first
    dispatches outlast the first read.
    """
    if warm_up:
        until_announced(rig, 2)
    before = request_counts(rig.kube.metrics())
    until_announced(rig, n)
    return writes_per_resource(before, request_counts(rig.kube.metrics()), n)


def until_announced(rig: OperatorRig, n: int) -> None:
    """N small TaskWorkflows created, Succeeded, and their final Events posted."""
    ns = rig.kube.namespace("b6")
    created_until_succeeded(rig, ns, n)
    wait_all(lambda: ended_and_announced(rig.kube, ns), n, "B6's final Events")


def ended_and_announced(kube: Kube, ns: str) -> int:
    """TaskWorkflows in `ns` whose final Event is posted: kopf posts Events from a queue
    of its own, so the last one can follow the status PATCH that ended its resource."""
    final = {
        i["metadata"]["name"]: c["reason"]
        for i in kube.items(ns)
        for c in i.get("status", {}).get("conditions", [])
        if c["type"] == "Succeeded" and c["status"] != "Unknown"
    }
    events = kube.http.get(f"/api/v1/namespaces/{ns}/events")
    events.raise_for_status()
    announced = {(e["involvedObject"]["name"], e["reason"]) for e in events.json()["items"]}
    return sum((name, reason) in announced for name, reason in final.items())


def profile_b6(rig: OperatorRig, n: int, seconds: int, path: Path) -> dict[str, float]:
    """The API server's CPU profile (Go pprof) over B6's operator side, run back to back.

    Needs a rig whose API server serves /debug/pprof (`operator_rig(profiling=True)`);
    read it with `go tool pprof -top <kube-apiserver> <path>`.
    """
    profile: list[httpx.Response] = []
    params = {"seconds": str(seconds)}
    timeout = httpx.Timeout(60, read=seconds + 60)
    fetch = Thread(
        target=lambda: profile.append(
            rig.kube.http.get("/debug/pprof/profile", params=params, timeout=timeout)
        )
    )
    fetch.start()
    runs, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        created_until_succeeded(rig, rig.kube.namespace("b6"), n)
        runs += 1
    fetch.join()
    profile[0].raise_for_status()
    path.write_bytes(profile[0].content)
    return {"runs": runs, "resources": runs * n, "seconds": seconds}


# ---------------------------------------------------------------- B6b


def create_many(kube: Kube, ns: str, manifests: Sequence[dict[str, Any]], threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda m: kube.create(ns, m), manifests))


def b6b(rig: OperatorRig, n: int) -> dict[str, float]:
    """N TaskWorkflows created through the API server at once: completed per minute."""
    ns = rig.kube.namespace("b6b")
    started = time.monotonic()
    create_many(rig.kube, ns, [tw(f"b6b-{i}", SMALL) for i in range(n)])
    rig.kube.wait_succeeded(ns, n, "B6b")
    elapsed = time.monotonic() - started
    return {"seconds": elapsed, "per_minute": n / elapsed * 60}


# ---------------------------------------------------------------- B6c


def time_one(rig: OperatorRig, ns: str, name: str, workflow: Any) -> float:
    started = time.monotonic()
    rig.kube.create(ns, tw(name, workflow))
    rig.kube.wait_succeeded(ns, 1, f"B6c {name}", name=name)
    return time.monotonic() - started


def api_time(rig: OperatorRig, workflow: Any) -> float:
    """One workflow through POST /workflows → Succeeded (Celery's own time for it)."""
    started = time.monotonic()
    with rig.api.client(timeout=30) as client:
        wid = client.post("/workflows", json={"workflow": workflow}).json()["id"]

        def done() -> int:
            return int(client.get(f"/workflows/{wid}").json()["phase"] == "Succeeded")

        wait_all(done, 1, "B6c API")
    return time.monotonic() - started


def b6c(rig: OperatorRig, steps: int) -> dict[str, float]:
    """A `steps`-step chain against one task, created → Succeeded: ms per extra step.

    The same two through POST /workflows give Celery's own cost per chain step
    (`api_ms_per_step`), the floor under the operator's figure.
    """
    ns = rig.kube.namespace("b6c")
    one = time_one(rig, ns, "one", {"task": "add", "args": [1, 1]})
    chain = time_one(rig, ns, "chain", chain_of(steps))
    api_one = api_time(rig, {"task": "add", "args": [1, 1]})
    api_chain = api_time(rig, chain_of(steps))
    return {
        "one_s": one,
        "chain_s": chain,
        "ms_per_step": (chain - one) / (steps - 1) * 1000,
        "api_ms_per_step": (api_chain - api_one) / (steps - 1) * 1000,
    }


# ---------------------------------------------------------------- B6d


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_over(pid: int, window: float) -> float:
    before = cpu_seconds(pid)
    end = time.monotonic() + window
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))  # a fixed measuring window, not a synchronisation
    return cpu_seconds(pid) - before


def finished_status() -> dict[str, Any]:
    """A Succeeded status as the operator writes it (one leaf)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cond = {"status": "True", "reason": "Succeeded", "message": "", "lastTransitionTime": now,
            "observedGeneration": 1}  # fmt: skip
    return {
        "phase": "Succeeded", "progress": "1/1", "workflowId": "bench", "message": "",
        "observedGeneration": 1, "nodesTruncated": False, "nodes": [],
        "counts": {"total": 1, "pending": 0, "running": 0, "succeeded": 1, "failed": 0,
                   "cancelled": 0, "skipped": 0},
        "conditions": [{"type": "Accepted", **cond, "reason": "Dispatched"},
                       {"type": "Succeeded", **cond}],
        "startedAt": now, "finishedAt": now, "result": 2,
    }  # fmt: skip


def create_finished(kube: Kube, ns: str, n: int, threads: int = 8, ttl: int | None = None) -> None:
    """N TaskWorkflows that already read Succeeded: created, then their status written."""
    status = finished_status()
    extra = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}

    def one(i: int) -> None:
        name = f"done-{i}"
        kube.create(ns, tw(name, {"task": "add", "args": [1, 1]}, **extra))
        response = kube.http.patch(
            kube.tw_path(ns, name) + "/status",
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))


def handled_by_operator(kube: Kube, ns: str) -> Callable[[], int]:
    """How many resources carry the operator's finalizer (it has seen them)."""

    def count() -> int:
        return sum(
            "celery-harder.io/cancel-workflow" in i["metadata"].get("finalizers", [])
            for i in kube.items(ns)
        )

    return count


def quiet(kube: Kube, ns: str, seconds: float, timeout: float = RUN_TIMEOUT) -> None:
    """Wait until no TaskWorkflow in `ns` changed for `seconds` (the list's resourceVersions)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        versions = sorted(i["metadata"]["resourceVersion"] for i in kube.items(ns))
        if versions != last:
            last, since = versions, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ns} kept changing for {timeout:.0f}s")
        time.sleep(0.5)


def versions(kube: Kube, ns: str) -> dict[str, str]:
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in kube.items(ns)}


def b6d_samples(
    rig: OperatorRig,
    n: int,
    window: float,
    reps: int = 1,
    ttl: int | None = None,
    settle: float = 5.0,
) -> tuple[list[float], list[float], int]:
    """Operator CPU over `reps` windows with no TaskWorkflow, then `reps` with N finished.

    Returns the idle windows' CPU seconds, the loaded windows' and the number of
    resources written during the loaded windows (a finished resource must see no
    handler run, so that is 0). The cluster must hold no TaskWorkflow when it starts;
    it leaves the N behind. With `ttl` every resource also has a
    ttlSecondsAfterFinished still to wait out (a day, say).
    """
    pid = rig.operator_pid()
    ns = rig.kube.namespace("b6d")
    # kopf's per-resource workers exit settings.queueing.idle_timeout (5 s) after their
    # last event: let those of earlier rows go before a window opens.
    cpu_over(pid, settle)
    idle = [cpu_over(pid, window) for _ in range(reps)]
    create_finished(rig.kube, ns, n, ttl=ttl)
    wait_all(handled_by_operator(rig.kube, ns), n, "B6d: the operator to see every resource")
    quiet(rig.kube, ns, seconds=min(settle, window))
    cpu_over(pid, settle)
    loaded: list[float] = []
    written = 0
    for _ in range(reps):
        before = versions(rig.kube, ns)
        loaded.append(cpu_over(pid, window))
        after = versions(rig.kube, ns)
        written += sum(before[k] != after.get(k) for k in before)
    return idle, loaded, written


def at_least_a_tick(values: Sequence[float]) -> list[float]:
    """One clock tick is the resolution: never divide by zero on a very idle baseline."""
    return [max(v, 1 / CLOCK_TICKS) for v in values]


def b6d(
    rig: OperatorRig, n: int, window: float, ttl: int | None = None, settle: float = 5.0
) -> dict[str, float]:
    """Operator CPU over `window` with N finished TaskWorkflows against with none, once."""
    idle, loaded, written = b6d_samples(rig, n, window, 1, ttl, settle)
    return {
        "idle_cpu_s": idle[0],
        "loaded_cpu_s": loaded[0],
        "ratio": at_least_a_tick(loaded)[0] / at_least_a_tick(idle)[0],
        "written": float(written),
    }


def delete_all(kube: Kube, timeout: float = RUN_TIMEOUT) -> None:
    """Delete every TaskWorkflow (the operator releases their finalizers) and wait."""
    listed = kube.http.get(f"{GROUP_PATH}/taskworkflows")
    listed.raise_for_status()
    for ns in {i["metadata"]["namespace"] for i in listed.json()["items"]}:
        kube.http.delete(kube.tw_path(ns)).raise_for_status()

    deadline = time.monotonic() + timeout
    while (left := len(kube.http.get(f"{GROUP_PATH}/taskworkflows").json()["items"])) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{left} TaskWorkflows still there after {timeout:.0f}s")
        time.sleep(0.5)


# ---------------------------------------------------------------- the harness's group


def run(server: RedisServer, workdir: Path, size: Size) -> Results:
    """The harness's operator group: B6, B6b and B6c `size.reps` times, B6's writes
    counted `size.reps` times, then B6d, on one rig.

    B6d comes last, once the earlier rows' resources are deleted: it needs a cluster with
    no TaskWorkflow for its baseline, and leaves its N finished ones behind.
    """
    n, steps, many = size.workflows, size.chain_steps, size.throughput
    found: dict[str, list[dict[str, float]]] = {"B6": [], "B6b": [], "B6c": []}
    with operator_rig(server, workdir / "b6", concurrency=size.concurrency) as rig:
        b6(rig, 2)  # warm-up: the first connections, imports and watch events
        for _ in range(size.reps):
            found["B6"].append(b6(rig, n))
            found["B6b"].append(b6b(rig, many))
            found["B6c"].append(b6c(rig, steps))
        # After the timed rows, so that each of them runs as it did before this count.
        counted = [b6_writes(rig, n, warm_up=False) for _ in range(size.reps)]
        delete_all(rig.kube)
        idle, loaded, written = b6d_samples(rig, size.finished, size.window, size.reps)
    op = [r["operator_s"] for r in found["B6"]]
    writes = [sum(r.values()) for r in counted]
    by_kind = {
        kind: median([r.get(kind, 0.0) for r in counted])
        for kind in sorted({k for r in counted for k in r})
    }
    api = [r["api_s"] for r in found["B6"]]
    per_min = [r["per_minute"] for r in found["B6b"]]
    argo = [ARGO_DEFAULT] * len(per_min)
    per_step = [r["ms_per_step"] for r in found["B6c"]]
    one_ms = [1000 * r["one_s"] for r in found["B6c"]]
    api_per_step = [r["api_ms_per_step"] for r in found["B6c"]]
    cpu = ratios(at_least_a_tick(loaded), at_least_a_tick(idle))
    results = Results()
    results.rows += [
        Row("B6", f"{n} two-step TaskWorkflows created one after the other → all Succeeded "
            "(operator)", "s", Figure.of(op),
            f"the same {n} sent one after the other to POST /workflows", ratios(op, api),
            Figure.of(api)),
        Row("B6", f"the API server's writes per TaskWorkflow, {n} created one after the "
            "other (as B6, counted by its request counter)", "writes", Figure.of(writes),
            "— (POST /workflows writes nothing there)", None),
        Row("B6b", "TaskWorkflows completed per minute through the API server", "wf/min",
            Figure.of(per_min), "Argo Workflows' published 270 wf/min (default; 810 tuned)",
            ratios(per_min, argo), Figure.of(argo)),
        Row("B6c", f"per-step overhead of a {steps}-step chain TaskWorkflow", "ms/step",
            Figure.of(per_step), "a one-task TaskWorkflow, created → Succeeded",
            ratios(per_step, one_ms), Figure.of(one_ms), "ms"),
        Row("B6c", f"Celery's own per-step cost, the same {steps}-step chain via "
            "POST /workflows", "ms/step", Figure.of(api_per_step),
            "— (the floor under the row above)", None),
        Row("B6d", f"operator CPU over {size.window:g} s with {size.finished:,} finished "
            "TaskWorkflows present", "s", Figure.of(loaded),
            "the same window with no TaskWorkflow", cpu, Figure.of(idle)),
    ]  # fmt: skip
    results.targets += [
        check("B6", f"{n} TaskWorkflows ≤ 2× the same via POST /workflows",
              ratios(op, api), "×", lambda x: x <= 2),
        check("B6b", "≥ 1,000 TaskWorkflows per minute", Figure.of(per_min), " wf/min",
              lambda x: x >= 1000, note=f"Argo {ARGO_DEFAULT:.0f} default, {ARGO_TUNED:.0f} tuned"),
        check("B6c", f"per-step overhead of a {steps}-step chain ≤ 10 ms/step",
              Figure.of(per_step), " ms/step", lambda x: x <= 10),
        check("B6d", f"operator CPU with {size.finished:,} finished TaskWorkflows ≤ 1.2× with none",
              cpu, "×", lambda x: x <= 1.2,
              note=f"{written} resources written during the loaded windows"),
    ]  # fmt: skip
    results.notes.append(
        "B6: bench/operator_rows.py; the operator as users run it (`kopf run`, the default "
        f"{default_poll_interval():g} s status poll, signed in with the chart's ServiceAccount "
        "token and RBAC as in a cluster; until this session with the control plane's admin "
        "certificate, which costs the API server an x509 verification per request), one "
        "prefork worker (concurrency "
        f"{size.concurrency}), each repetition's TaskWorkflows in a namespace of their own. "
        f"B6 creates its {n} with sequential POSTs to the API server and sends the baseline's "
        f"{n} as sequential POST /workflows: like for like (`python -m bench.operator_rows "
        "--only B6-kubectl` gives one `kubectl apply` instead, which adds kubectl's start). "
        f"B6's writes: {n} more TaskWorkflows, {size.reps} times after the timed rows, medians "
        "per TaskWorkflow: "
        + ", ".join(f"{kind} {fmt(count)}" for kind, count in by_kind.items())
        + " (bench/operator_rows.md: what each costs the API server). "
        f"B6b: {many} created at once (8 threads). B6c: (chain of {steps} − one task) ÷ "
        f"{steps - 1}, each created alone. B6, B6b and B6c see the TaskWorkflows finish "
        "through a watch on their namespace, as `kubectl wait` does (until this session a "
        "LIST or GET every 50 ms, which cost the API server a read from etcd each time); "
        "the baselines poll GET /workflows/{id} every 50 ms. "
        f"B6d: {size.reps} windows of {size.window:g} s "
        "with no TaskWorkflow (the earlier rows' deleted), then "
        f"{size.reps} with {size.finished:,} finished ones (created with a Succeeded "
        "status, seen by the operator, left to settle), paired in order; CPU is utime + "
        f"stime of the kopf process at 1/{CLOCK_TICKS} s resolution (the ratio counts a window as "
        f"at least one tick); median idle {fmt(median(idle))} s. Argo's figures are published "
        "ones, not measured here."
    )
    return results


def main() -> None:
    """`python -m bench.operator_rows`: the rows on a fresh rig, printed as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", default="B6,B6-kubectl,B6-writes,B6b,B6c,B6d")
    parser.add_argument(
        "--operator-pythonpath", default=None,
        help="run the operator from this copy of celery_harder_operator (a before/after run)",
    )  # fmt: skip
    parser.add_argument("--poll-interval", type=float, default=None)
    parser.add_argument("--finished", type=int, default=None, help="B6d's resources")
    parser.add_argument("--ttl", type=int, default=None, help="B6d: their TTL in seconds")
    parser.add_argument(
        "--apiserver-profile", type=Path, default=None,
        help="write the API server's CPU profile over B6's operator side here (row B6-profile)",
    )  # fmt: skip
    parser.add_argument("--profile-seconds", type=int, default=15)
    args = parser.parse_args()
    size = SIZES[args.size]
    rows = {r.strip() for r in args.only.split(",")}
    out: dict[str, Any] = {}
    env = {"PYTHONPATH": args.operator_pythonpath} if args.operator_pythonpath else None
    with (
        tempfile.TemporaryDirectory(prefix="operator-rows-") as tmp,
        running_redis(Path(tmp) / "redis") as server,
        operator_rig(
            server,
            Path(tmp) / "rig",
            poll_interval=args.poll_interval,
            operator_env=env,
            profiling=args.apiserver_profile is not None,
        ) as rig,
    ):
        print(f"operator pid {rig.operator_pid()}", flush=True)
        steps: dict[str, Callable[[], dict[str, float]]] = {
            "B6": lambda: b6(rig, size.workflows),
            "B6-kubectl": lambda: b6(rig, size.workflows, kubectl=True),
            "B6-writes": lambda: b6_writes(rig, size.workflows),
            "B6-profile": lambda: profile_b6(
                rig, size.workflows, args.profile_seconds, args.apiserver_profile
            ),
            "B6b": lambda: b6b(rig, size.throughput),
            "B6c": lambda: b6c(rig, size.chain_steps),
            "B6d": lambda: b6d(rig, args.finished or size.finished, size.window, args.ttl),
        }
        if args.apiserver_profile is not None:
            rows.add("B6-profile")
        for row, measure in steps.items():
            if row in rows:
                out[row] = measure()
                print(row, out[row], flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
