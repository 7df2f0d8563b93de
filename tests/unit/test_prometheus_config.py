"""T0: the local Prometheus' config mirrors what the chart's ServiceMonitors give."""

from pathlib import Path

import pytest

from celery_harder_dev.prometheus import ScrapeTarget, prometheus_config, target_labels


def test_static_targets_carry_the_service_monitor_labels() -> None:
    targets = [
        ScrapeTarget("rel-api", "127.0.0.1:1", target_labels("rel-api", "ns", "c", "http")),
        ScrapeTarget(
            "rel-exporter",
            "127.0.0.1:2",
            target_labels("rel-exporter", "ns", "c", "metrics"),
            honor_labels=True,
            interval="4s",
        ),
    ]
    config = prometheus_config(targets, [Path("/r.yaml")])
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert config["rule_files"] == ["/r.yaml"]
    api, exporter = config["scrape_configs"]
    assert api == {
        "job_name": "rel-api",
        "metrics_path": "/metrics",
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "static_configs": [
            {
                "targets": ["127.0.0.1:1"],
                "labels": {
                    "namespace": "ns",
                    "service": "rel-api",
                    "endpoint": "http",
                    "cluster": "c",
                },
            }
        ],
    }
    assert exporter["honor_labels"] is True
    assert (exporter["scrape_interval"], exporter["scrape_timeout"]) == ("4s", "4s")
    with pytest.raises(ValueError, match="duplicate"):
        prometheus_config([targets[0], targets[0]])
