"""T4-local: two worker pools on the real node, each scaled by KEDA on its own backlog.

A `cpu` pool (its own Deployment and ScaledObject, from scale-to-zero) is added beside
the default pool. A backlog on `cpu` scales the cpu pool to its maximum while the
default pool stays where it was; every cpu task runs on a cpu pod; then the cpu pool
goes back to zero.
"""

import time
from collections.abc import Iterator

import pytest

from tests.cluster.workload import Ledger
from tests.support.polling import wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4

CPU_MAX = 2
POOL = [
    "workers[0].name=cpu",
    "workers[0].queues[0]=cpu",
    "workers[0].concurrency=1",
    "workers[0].keda.minReplicaCount=0",
    f"workers[0].keda.maxReplicaCount={CPU_MAX}",
    "workers[0].keda.pollingInterval=2",
    "workers[0].keda.cooldownPeriod=10",
    "workers[0].keda.hpaBehavior.scaleDown.stabilizationWindowSeconds=5",
]


@pytest.fixture(scope="module")
def pools(release: Release) -> Iterator[Release]:
    """The release with a `cpu` pool beside the default one; without it afterwards."""
    release.install(sets=POOL)
    try:
        yield release
    finally:
        release.install()


def replicas(release: Release, deployment: str) -> int:
    spec: dict[str, int] = release.get("deployment", release.component(deployment))["spec"]
    return int(spec.get("replicas", 0))


def test_a_backlog_on_one_pool_scales_that_pool_alone(pools: Release, ledger: Ledger) -> None:
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()

    def sample() -> tuple[float, int, int]:
        row = (round(time.monotonic() - started, 1), replicas(pools, "worker"),
               replicas(pools, "worker-cpu"))  # fmt: skip
        samples.append(row)
        return row

    wait_until(lambda: sample()[2] == 0, 120, 1, "the idle cpu pool at 0")
    # An earlier test's backlog can leave the default pool above its minimum until its
    # HPA's scale-down window ends; the claim is about a default pool at rest.
    default_min = int(
        pools.get("scaledobject", pools.component("worker"))["spec"]["minReplicaCount"]
    )
    wait_until(lambda: sample()[1] == default_min, 420, 2, "the default pool at its minimum")
    at_rest = len(samples)
    default_before = sample()[1]
    ledger.submit(seconds=3, count=12, queue="cpu")
    try:
        wait_until(lambda: sample()[2] == CPU_MAX, 120, 1, "the cpu pool at its maximum")
        wait_until(lambda: sample() and ledger.done(), 300, 2, "every cpu task done")
        cpu_logs = pool_logs(pools, "worker-cpu")
        wait_until(lambda: sample()[2] == 0, 180, 1, "the cpu pool back to 0")
    finally:
        print(f"{'t (s)':>7} {'default':>8} {'cpu':>4}")
        for row in samples:
            print(f"{row[0]:>7} {row[1]:>8} {row[2]:>4}")
    counts = ledger.report("cpu pool backlog")
    assert counts["lost"] == 0 and counts["completed"] == 12
    # The default pool never moved while the cpu pool went 0 -> max -> 0.
    assert {row[1] for row in samples[at_rest:]} == {default_before}, samples[at_rest:]
    # No default pod received a cpu task (their logs), and the cpu pods did: the last
    # ones at least, as a cpu pod scaled in early takes its log with it.
    default_logs = pool_logs(pools, "worker")
    assert default_logs and not [t for t in ledger.ids if t in default_logs]
    assert all(f"sleep[{t}] received" in cpu_logs for t in ledger.ids[-2:]), "on cpu pods"


def pool_logs(release: Release, component: str) -> str:
    """The logs of every pod a pool has now."""
    return "".join(
        release.kubectl("logs", "-n", release.namespace, p["metadata"]["name"]).stdout
        for p in release.pods(component)
    )
