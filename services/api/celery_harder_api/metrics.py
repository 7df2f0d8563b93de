"""The API's Prometheus metrics, one registry per app.

HTTP requests and latency are prometheus-fastapi-instrumentator's default series
(`http_requests_total{handler,method,status}`, `http_request_duration_seconds`, the
request and response sizes, the high-resolution latency), recorded by `HttpMetrics`,
a leaner middleware than the instrumentator's that writes the same series; the
instrumentator still serves GET /metrics. The rest is named in
`celery_harder.metric_names`: submissions, the workflows this process saw start and
finish, and the queue gauges read from Redis at scrape time.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from timeit import default_timer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary
from prometheus_fastapi_instrumentator import Instrumentator, routing
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


# prometheus-fastapi-instrumentator's defaults (metrics.default and its middleware).
LATENCY_HIGHR_BUCKETS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    2.5,
    3,
)
LATENCY_HIGHR_BUCKETS += (3.5, 4, 4.5, 5, 7.5, 10, 30, 60, float("inf"))
LATENCY_LOWR_BUCKETS = (0.1, 0.5, 1, float("inf"))
EXCLUDED_HANDLERS = ("/metrics",)


class HttpSeries:
    """The instrumentator's default HTTP metrics, with the same names, help and labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ("method", "status", "handler"),
            registry=registry,
        )
        self.in_size = Summary(
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ("handler",),
            registry=registry,
        )
        self.out_size = Summary(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ("handler",),
            registry=registry,
        )
        self.latency_highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate "
            "percentile calculations. ",
            buckets=LATENCY_HIGHR_BUCKETS,
            registry=registry,
        )
        self.latency_lowr = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation "
            "by handler is important. ",
            ("method", "handler"),
            buckets=LATENCY_LOWR_BUCKETS,
            registry=registry,
        )


def _header(headers: Any, name: bytes) -> str | None:
    """The first value of a header (ASGI raw headers; names compared lower-cased)."""
    for key, value in headers:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class HttpMetrics:
    """ASGI middleware recording prometheus-fastapi-instrumentator's default HTTP series.

    The instrumentator's middleware builds a Request, a Response and an Info per
    request, matches the path against every route again, and looks up five labelled
    children under a lock. This one records the same observations the same way (the
    handler label is the matched route's template, "none" for paths no route matches;
    the status is its class, 5xx when the app raised before answering; sizes are the
    Content-Length headers, 0 without one; latency from before the app to after the
    last message; handlers matching EXCLUDED_HANDLERS not at all), but resolves a
    static path's handler once and keeps each label combination's children.
    tests/unit/test_metrics_handlers.py compares both middlewares' output.
    """

    MAX_CACHED = 1024

    def __init__(
        self,
        app: ASGIApp,
        series: HttpSeries,
        excluded_handlers: Sequence[str] = EXCLUDED_HANDLERS,
    ) -> None:
        self.app = app
        self.series = series
        self.excluded = [re.compile(path) for path in excluded_handlers]
        self._static: dict[tuple[str, str, str], tuple[str, bool]] = {}
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}

    def handler(self, scope: Scope) -> tuple[str, bool]:
        """The handler label of a request and whether it is excluded, as the instrumentator's.

        A route without parameters whose template is the path itself resolves the same
        way for every request of that method, so its answer is kept.
        """
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        found = self._static.get(key)
        if found is not None:
            return found
        request = Request(scope)
        name = routing.get_route_name(request, should_include_root_path=False)
        handler = name or request.url.path
        excluded = any(pattern.search(handler) for pattern in self.excluded)
        found = (handler if name else "none", excluded)
        if name == key[2] and len(self._static) < self.MAX_CACHED:
            self._static[key] = found
        return found

    def children(self, method: str, status: str, handler: str) -> tuple[Any, Any, Any, Any]:
        """The labelled counter, size summaries and latency histogram for one combination."""
        key = (method, status, handler)
        found = self._children.get(key)
        if found is None:
            series = self.series
            found = (
                series.total.labels(method, status, handler),
                series.in_size.labels(handler),
                series.out_size.labels(handler),
                series.latency_lowr.labels(method, handler),
            )
            if len(self._children) < self.MAX_CACHED:
                self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = default_timer()
        handler, excluded = self.handler(scope)
        status_code: Any = 500
        response_headers: Any = ()

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code, response_headers
            if message["type"] == "http.response.start":
                status_code = message["status"]
                response_headers = message.get("headers", ())
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not excluded:
                duration = max(default_timer() - start, 0.0)
                code = status_code.value if isinstance(status_code, HTTPStatus) else status_code
                status = str(code)[0] + "xx"
                total, in_size, out_size, latency = self.children(scope["method"], status, handler)
                total.inc()
                in_size.observe(int(_header(scope.get("headers", ()), b"content-length") or 0))
                out_size.observe(int(_header(response_headers, b"content-length") or 0))
                self.series.latency_highr.observe(duration)
                latency.observe(duration)


def install_metrics(app: Starlette, settings: Settings) -> ApiMetrics:
    """Instrument `app` and serve GET /metrics from a registry of its own."""
    registry = CollectorRegistry()
    app.add_middleware(HttpMetrics, series=HttpSeries(registry))
    Instrumentator(registry=registry).expose(app, endpoint="/metrics", include_in_schema=False)
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
