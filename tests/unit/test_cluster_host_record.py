"""The host record that `make cluster-down` restores: an interrupted node's, else the host's."""

import json
from dataclasses import asdict
from pathlib import Path

from celery_harder_dev.cluster import LocalCluster, host
from celery_harder_dev.cluster.layout import Layout


def test_an_interrupted_nodes_record_is_the_origin_not_the_host_it_left_behind(
    tmp_path: Path,
) -> None:
    cluster = LocalCluster(layout=Layout(tmp_path))
    origin = host.HostRecord(
        sysctls={"net.ipv4.ip_forward": "0"},
        existing_dirs=["/etc/cni"],
        nft_tables=[],
        iptables_chains=[],
    )
    cluster.layout.host_record.write_text(json.dumps(asdict(origin)))
    assert cluster.host_before() == origin


def test_without_an_earlier_record_the_origin_is_the_host_now(tmp_path: Path) -> None:
    cluster = LocalCluster(layout=Layout(tmp_path))
    assert cluster.host_before() == host.HostRecord.capture()
    assert not cluster.layout.host_record.exists()  # reading the origin saves nothing
