"""The API's Prometheus metrics, one registry per app.

HTTP requests and latency come from prometheus-fastapi-instrumentator
(`http_requests_total{handler,method,status}`, `http_request_duration_seconds`);
the rest is named in `celery_harder.metric_names`: submissions, the workflows this
process saw start and finish, and the queue gauges read from Redis at scrape time.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette

from celery_harder import metric_names as mn
from celery_harder.metrics_registry import WorkflowMetrics, counter
from celery_harder.settings import Settings
from celery_harder.workflow.spec import KINDS as NODE_KINDS
from celery_harder_api.queue_metrics import QueueCollector


def root_kind(spec: Any) -> str:
    """The kind of a workflow's root node (task, chain, group, chord): the label's value.

    Called on a spec the engine accepted, so exactly one kind key is there.
    """
    if isinstance(spec, Mapping):
        for kind in NODE_KINDS:
            if kind in spec:
                return kind
    raise ValueError(f"not a workflow node: {spec!r}")


@dataclass(frozen=True)
class ApiMetrics:
    """What the routes and the workflow engine update."""

    registry: CollectorRegistry
    tasks_submitted: Counter
    workflows_submitted: Counter
    workflows: WorkflowMetrics


def install_metrics(app: Starlette, settings: Settings) -> ApiMetrics:
    """Instrument `app` and serve GET /metrics from a registry of its own."""
    registry = CollectorRegistry()
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False
    )
    workflows_submitted = counter(mn.WORKFLOWS_SUBMITTED, registry)
    for kind in NODE_KINDS:
        workflows_submitted.labels(kind=kind)
    registry.register(QueueCollector(settings))
    return ApiMetrics(
        registry=registry,
        tasks_submitted=counter(mn.TASKS_SUBMITTED, registry),
        workflows_submitted=workflows_submitted,
        workflows=WorkflowMetrics(registry),
    )
