"""T4-local: KEDA built from its module scales the chart's workers on the real node.

KEDA's operator reads the queue keys (and kombu's `unacked` hash) from the chart's
Redis and does 0 <-> 1; kube-controller-manager's HPA does 1 <-> N from KEDA's
external metrics. The tests submit real tasks, count what happened to each one
(the worker records every start in Redis), and print a timeline.
"""

import time
from collections.abc import Iterator

import pytest

from tests.cluster.workload import MAX_REPLICAS, Ledger, Timeline
from tests.support.polling import wait_until
from tests.support.release import Release

pytestmark = pytest.mark.t4

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


@pytest.fixture(scope="module")
def scaling(release: Release) -> Iterator[Release]:
    """The release with scale-to-zero and short polling; the defaults again afterwards."""
    release.install(sets=FAST_SCALING)
    try:
        yield release
    finally:
        release.install()


def test_workers_scale_from_zero_to_the_maximum_and_back(scaling: Release, ledger: Ledger) -> None:
    timeline = Timeline(scaling, ledger.broker())
    wait_until(lambda: timeline.sample()[3] == 0, 120, 1, "the idle workers scaled to 0")
    ledger.submit(seconds=3, count=150)
    ledger.submit(seconds=3, count=50, priority=9)
    submitted = time.monotonic()
    try:
        wait_until(lambda: timeline.sample()[3] > 1, POLLING + HPA_SYNC + 5, 1, "above 1")
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
    timeline = Timeline(scaling, ledger.broker())
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
