"""T4-local: KEDA built from its module scales the chart's workers on the real node.

KEDA's operator reads the queue keys (and kombu's `unacked` hash) from the chart's
Redis and does 0 <-> 1; kube-controller-manager's HPA does 1 <-> N from KEDA's
external metrics. The tests submit real tasks, count what happened to each one
(the worker records every start in Redis), and print a timeline.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from celery_harder import keys
from celery_harder.queues import queue_keys
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from tests.support.polling import wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4

QUEUE = "celery"
MAX_REPLICAS = 4
POLLING = 2
COOLDOWN = 10
# Short for the test; the chart's defaults are 5 s polling and a 300 s cooldown.
FAST_SCALING = [
    "keda.minReplicaCount=0",
    f"keda.maxReplicaCount={MAX_REPLICAS}",
    f"keda.pollingInterval={POLLING}",
    f"keda.cooldownPeriod={COOLDOWN}",
    "keda.hpaBehavior.scaleDown.stabilizationWindowSeconds=5",
]
HPA_SYNC = 15  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period default


@dataclass
class Ledger:
    """Every task a test submitted, and what became of it."""

    client: TaskClient
    ids: list[str] = field(default_factory=list)

    def submit(self, seconds: float, count: int, priority: int = 0) -> None:
        for _ in range(count):
            task_id = str(uuid.uuid4())
            self.client.record_issued([task_id])
            self.client.app.send_task(
                "sleep", args=[seconds], task_id=task_id, queue=QUEUE, priority=priority
            )
            self.ids.append(task_id)

    def states(self) -> dict[str, str]:
        out = {}
        for task_id in self.ids:
            status = self.client.status(task_id)
            out[task_id] = status.state if status else "UNKNOWN"
        return out

    def executions(self) -> dict[str, int]:
        """How often each task's body started (the worker's own count, CatalogTask)."""
        raw = self.client.results.mget([keys.DELIVERIES + t for t in self.ids])
        return {t: int(n or 0) for t, n in zip(self.ids, raw, strict=True)}

    def report(self, case: str) -> dict[str, int]:
        states = self.states()
        runs = self.executions()
        counts = {
            "tasks": len(self.ids),
            "completed": sum(1 for s in states.values() if s == "SUCCESS"),
            "lost": sum(1 for s in states.values() if s != "SUCCESS"),
            "duplicated": sum(1 for n in runs.values() if n > 1),
        }
        print(f"{case}: {counts}")
        return counts

    def done(self) -> bool:
        return all(s == "SUCCESS" for s in self.states().values())


@dataclass
class Timeline:
    """Samples of queue length, in-flight count and worker replicas."""

    release: Release
    broker: redis.Redis
    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[float, int, int, int, int]] = field(default_factory=list)

    def sample(self) -> tuple[float, int, int, int, int]:
        waiting = sum(int(self.broker.llen(k)) for k in queue_keys(QUEUE))
        in_flight = int(self.broker.hlen("unacked"))
        deployment = self.release.get("deployment", self.release.component("worker"))
        wanted = int(deployment["spec"].get("replicas", 0))
        ready = int(deployment.get("status", {}).get("readyReplicas", 0))
        row = (round(time.monotonic() - self.started, 1), waiting, in_flight, wanted, ready)
        self.rows.append(row)
        return row

    def print(self) -> None:
        print(f"{'t (s)':>7} {'waiting':>8} {'in flight':>9} {'replicas':>8} {'ready':>6}")
        for row in self.rows:
            print(f"{row[0]:>7} {row[1]:>8} {row[2]:>9} {row[3]:>8} {row[4]:>6}")


@pytest.fixture(scope="module")
def scaling(release: Release) -> Iterator[Release]:
    """The release with scale-to-zero and short polling; the defaults again afterwards."""
    release.install(sets=FAST_SCALING)
    try:
        yield release
    finally:
        release.install()


@pytest.fixture
def ledger(scaling: Release) -> Iterator[Ledger]:
    service = scaling.get("service", scaling.component("redis"))
    password = scaling.secret(scaling.component("redis"), "redis-password")
    url = f"redis://:{password}@{service['spec']['clusterIP']}:6379/0"
    client = create_task_client(Settings(broker_url=url, result_backend=url))
    yield Ledger(client)
    client.app.close()


def broker_of(ledger: Ledger) -> redis.Redis:
    return redis.Redis.from_url(ledger.client.settings.broker_url, socket_timeout=5)


def test_workers_scale_from_zero_to_the_maximum_and_back(scaling: Release, ledger: Ledger) -> None:
    timeline = Timeline(scaling, broker_of(ledger))
    wait_until(lambda: timeline.sample()[3] == 0, 120, 1, "the idle workers scaled to 0")
    ledger.submit(seconds=3, count=150)
    ledger.submit(seconds=3, count=50, priority=9)
    submitted = time.monotonic()
    try:
        wait_until(lambda: timeline.sample()[3] > 1, POLLING + HPA_SYNC + 20, 1, "above 1")
        above_one = time.monotonic() - submitted
        wait_until(lambda: timeline.sample()[3] == MAX_REPLICAS, 90, 1, "the maximum")
        at_max = time.monotonic() - submitted
        wait_until(lambda: timeline.sample() and ledger.done(), 300, 2, "every task done")
        drained = time.monotonic() - submitted
        wait_until(lambda: timeline.sample()[3] == 0, COOLDOWN + 120, 1, "back to 0")
    finally:
        timeline.print()
    counts = ledger.report("scale 0 -> N -> 0")
    print(f"above 1 after {above_one:.0f} s, at {MAX_REPLICAS} after {at_max:.0f} s, "
          f"all done after {drained:.0f} s")  # fmt: skip
    assert counts["lost"] == 0 and counts["completed"] == 200
    assert counts["duplicated"] == 0


def test_scale_in_while_tasks_run_loses_nothing(scaling: Release, ledger: Ledger) -> None:
    """Lowering the maximum under load removes busy workers; their tasks still finish."""
    timeline = Timeline(scaling, broker_of(ledger))
    ledger.submit(seconds=20, count=2 * MAX_REPLICAS)
    try:
        wait_until(
            lambda: timeline.sample()[4] == MAX_REPLICAS and timeline.rows[-1][2] > MAX_REPLICAS,
            POLLING + HPA_SYNC + 60, 1, "every worker busy",
        )  # fmt: skip
        running = sum(1 for s in ledger.states().values() if s == "PROGRESS")
        scaling.install(sets=[*FAST_SCALING, "keda.maxReplicaCount=1"])
        wait_until(lambda: timeline.sample()[3] == 1, 60, 1, "scaled in to 1")
        wait_until(lambda: timeline.sample() and ledger.done(), 300, 2, "every task done")
    finally:
        timeline.print()
    counts = ledger.report("scale-in under load")
    assert running > 1, "tasks were running on the workers that went away"
    assert counts["lost"] == 0 and counts["completed"] == 2 * MAX_REPLICAS
