"""The API's Prometheus metrics, one registry per app (HTTP metrics: the instrumentator)."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette

TASKS_SUBMITTED_METRIC = "celery_harder_tasks_submitted"


@dataclass(frozen=True)
class ApiMetrics:
    """Counters the routes update."""

    registry: CollectorRegistry
    tasks_submitted: Counter


def install_metrics(app: Starlette) -> ApiMetrics:
    """Instrument `app` and serve GET /metrics from a registry of its own."""
    registry = CollectorRegistry()
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False
    )
    tasks_submitted = Counter(
        TASKS_SUBMITTED_METRIC,
        "Tasks the API sent to the broker, by catalog name.",
        ["task"],
        registry=registry,
    )
    return ApiMetrics(registry=registry, tasks_submitted=tasks_submitted)
