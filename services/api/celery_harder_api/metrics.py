"""The API's Prometheus metrics, one registry per app (HTTP metrics: the instrumentator)."""

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.applications import Starlette
from starlette.requests import Request

TASKS_SUBMITTED_METRIC = "celery_harder_tasks_submitted"


@dataclass(frozen=True)
class ApiMetrics:
    """Counters the routes update."""

    registry: CollectorRegistry
    tasks_submitted: Counter


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


def install_metrics(app: Starlette) -> ApiMetrics:
    """Instrument `app` and serve GET /metrics from a registry of its own."""
    registry = CollectorRegistry()
    Instrumentator(registry=registry, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False
    )
    for middleware in app.user_middleware:
        factory: Any = middleware.cls
        if factory is PrometheusInstrumentatorMiddleware:
            middleware.cls = StaticRouteNames
    tasks_submitted = Counter(
        TASKS_SUBMITTED_METRIC,
        "Tasks the API sent to the broker, by catalog name.",
        ["task"],
        registry=registry,
    )
    return ApiMetrics(registry=registry, tasks_submitted=tasks_submitted)
