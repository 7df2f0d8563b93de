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
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.applications import Starlette
from starlette.requests import Request

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


class StaticRouteNames(PrometheusInstrumentatorMiddleware):
    """The instrumentator's middleware, resolving the handler of a static path once.

    The instrumentator matches every request against all routes again to find its
    `handler` label, which cost a quarter of a POST /add. A path whose handler is the
    path itself (a route without parameters) always resolves the same way, so its
    answer is kept; templated paths (/result/{task_id}) and unknown ones are resolved
    per request as before. The labels are the instrumentator's own either way.
    """

    MAX_CACHED = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._static: dict[tuple[str, str], tuple[str, bool]] = {}

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        key = (request.scope.get("root_path", ""), request.scope["path"])
        found = self._static.get(key)
        if found is None:
            found = super()._get_handler(request)
            handler, templated = found
            if templated and handler == key[1] and len(self._static) < self.MAX_CACHED:
                self._static[key] = found
        return found


def install_metrics(app: Starlette, settings: Settings) -> ApiMetrics:
    """Instrument `app` and serve GET /metrics from a registry of its own."""
    registry = CollectorRegistry()
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False
    )
    for middleware in app.user_middleware:
        factory: Any = middleware.cls
        if factory is PrometheusInstrumentatorMiddleware:
            middleware.cls = StaticRouteNames
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
