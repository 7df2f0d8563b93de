"""prometheus-client objects built from `metric_names`, one way for the API and the operator.

Only the API and the operator import this module. The worker image carries
prometheus-client anyway (Flower requires it), so core depending on it adds nothing
there; the workflow engine itself never imports it (see workflow/observer.py).
"""

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from celery_harder import metric_names as mn
from celery_harder.metric_names import Metric


def _check(metric: Metric, kind: str) -> None:
    if metric.kind != kind:
        raise TypeError(f"{metric.name} is a {metric.kind}, not a {kind}")


def counter(metric: Metric, registry: CollectorRegistry) -> Counter:
    """The Counter `metric` names, registered on `registry`."""
    _check(metric, "counter")
    return Counter(metric.name, metric.help, list(metric.labels), registry=registry)


def gauge(metric: Metric, registry: CollectorRegistry) -> Gauge:
    """The Gauge `metric` names, registered on `registry`."""
    _check(metric, "gauge")
    return Gauge(metric.name, metric.help, list(metric.labels), registry=registry)


def histogram(metric: Metric, registry: CollectorRegistry) -> Histogram:
    """The Histogram `metric` names, with its buckets, registered on `registry`."""
    _check(metric, "histogram")
    buckets = metric.buckets or Histogram.DEFAULT_BUCKETS
    return Histogram(
        metric.name, metric.help, list(metric.labels), registry=registry, buckets=buckets
    )


def gauge_family(metric: Metric) -> GaugeMetricFamily:
    """An empty gauge family for a custom collector; add samples with `add_metric`."""
    _check(metric, "gauge")
    return GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))


def gauge_samples(
    metric: Metric, samples: Iterable[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    """A gauge family holding `(label values, value)` samples."""
    family = gauge_family(metric)
    for labels, value in samples:
        family.add_metric(list(labels), value)
    return family


class WorkflowMetrics:
    """A WorkflowObserver that counts into Prometheus: started, finished and duration."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = counter(mn.WORKFLOWS_STARTED, registry)
        self.finished = counter(mn.WORKFLOWS_FINISHED, registry)
        self.duration = histogram(mn.WORKFLOW_DURATION, registry)
        for outcome in mn.OUTCOMES:  # every outcome shows 0 from the start, not absent
            self.finished.labels(outcome=outcome)
            self.duration.labels(outcome=outcome)

    def on_started(self) -> None:
        self.started.inc()

    def on_finished(self, outcome: str, seconds: float | None) -> None:
        if outcome not in mn.OUTCOMES:
            raise ValueError(f"unknown workflow outcome {outcome!r}")
        self.finished.labels(outcome=outcome).inc()
        if seconds is not None:
            self.duration.labels(outcome=outcome).observe(seconds)
