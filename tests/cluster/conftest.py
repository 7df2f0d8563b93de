"""T4-local fixtures: the single node on this machine and the chart installed on it.

The node comes from `celery_harder_dev.cluster` (the code behind `make cluster`): if one
is already running it is used and left running; otherwise this package's tests start
one and take it down when they are done, as `make cluster-down` does, so that the
tiers after it run on a quiet machine.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_harder_dev.cluster import ClusterError, LocalCluster, host
from celery_harder_dev.cluster.binaries import Binaries, MissingBinaryError
from tests.cluster.workload import Ledger, task_client
from tests.support.release import Release


@pytest.fixture(scope="package")
def local_cluster() -> Iterator[LocalCluster]:
    """The running node; started here unless it already ran."""
    cluster = LocalCluster()
    started = not cluster.running()
    before = cluster.host_before()  # remains of an interrupted run are not the origin
    failure = None
    try:
        cluster.up()
    except (ClusterError, MissingBinaryError) as exc:
        failure = str(exc)
    if failure:  # outside the except block: one clear message, no exception chain
        pytest.fail(failure, pytrace=False)
    try:
        yield cluster
    finally:
        if started and os.environ.get("CELERY_HARDER_KEEP_CLUSTER") != "1":
            cluster.down()
            # `make cluster-down` leaves the machine as `up` found it.
            assert host.HostRecord.capture() == before
            assert not Path(f"/sys/class/net/{cluster.network.bridge}").exists()
            assert not any(d and d.alive() for d in cluster.daemons().values())


@pytest.fixture(scope="package")
def binaries(local_cluster: LocalCluster) -> Binaries:
    return Binaries.locate()


@pytest.fixture(scope="package")
def release(local_cluster: LocalCluster, binaries: Binaries) -> Release:
    """The chart with its local-cluster values: every Deployment and StatefulSet Ready."""
    release = Release(local_cluster, local_cluster.kubectl(binaries), binaries.helm)
    release.install()
    return release


@pytest.fixture
def ledger(release: Release) -> Iterator[Ledger]:
    """A fresh count of submitted tasks, sent through a client of the release's Redis."""
    client = task_client(release)
    yield Ledger(client)
    client.app.close()
