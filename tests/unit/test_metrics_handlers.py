"""T0: HttpMetrics writes prometheus-fastapi-instrumentator's own HTTP series.

The API records its HTTP metrics with a middleware of its own (celery_harder_api.metrics
.HttpMetrics). Dashboards, alert rules and the scrape tests read the instrumentator's
series, so here two copies of the API, one with HttpMetrics and one with the
instrumentator's middleware in its place, answer the same requests (2xx, 4xx, 5xx, an
unhandled error, templated, unknown and excluded paths, each twice so that cached
answers are compared too), and their /metrics text must hold the same families, help
texts, series and values; only latencies (bucket placement, sums) may differ.
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.middleware import Middleware
from starlette.requests import Request

from celery_harder.settings import Settings
from celery_harder_api.app import create_app
from celery_harder_api.metrics import HttpMetrics

# Nothing listens there: submissions and status reads answer 503 at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/healthz", {}),
    ("HEAD", "/healthz", {}),
    ("GET", "/tasks", {}),
    ("POST", "/add", {"json": {"x": 1, "y": 2}}),
    ("POST", "/add", {"json": {"x": "one"}}),
    ("POST", "/add", {"content": b"not json", "headers": {"content-type": "application/json"}}),
    ("GET", "/add", {}),
    ("POST", "/tasks", {"json": {"task": "add", "args": [1, 2]}}),
    ("POST", "/tasks", {"json": {"task": "nope"}}),
    ("GET", "/result/1234", {}),
    ("GET", "/result/{task_id}", {}),
    ("GET", "/workflows/abc/events", {}),
    ("GET", "/nowhere", {}),
    ("PATCH", "/nowhere/metrics", {}),
    ("GET", "/metrics", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/boom", {}),
]


def boom() -> None:
    raise RuntimeError("an unhandled error: 500 from ServerErrorMiddleware")


def api(reference: CollectorRegistry | None) -> FastAPI:
    """The API; with `reference`, the instrumentator's middleware records into it instead."""
    app = create_app(Settings(broker_url=DEAD_REDIS, result_backend=DEAD_REDIS, api_auth=False))
    app.add_api_route("/boom", boom)
    if reference is not None:
        [index] = [i for i, m in enumerate(app.user_middleware) if m.cls is HttpMetrics]
        app.user_middleware[index] = Middleware(
            PrometheusInstrumentatorMiddleware, registry=reference, excluded_handlers=["/metrics"]
        )
    return app


def http_samples(registry: CollectorRegistry) -> tuple[list[str], dict[tuple[Any, ...], float]]:
    """The http_* families' HELP/TYPE lines, and their samples (latency values as None)."""
    text = generate_latest(registry).decode()
    meta = sorted(line for line in text.splitlines() if line.startswith("# ") and " http_" in line)
    samples: dict[tuple[Any, ...], Any] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("http_"):
            continue
        for sample in family.samples:
            value: Any = sample.value
            timed = "duration" in sample.name and not sample.name.endswith("_count")
            if sample.name.endswith("_created") or (timed and sample.labels.get("le") != "+Inf"):
                value = None
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = value
    return meta, samples


async def answers(app: FastAPI) -> list[int]:
    """The status of each of REQUESTS, sent twice, in order."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return [
            (await client.request(method, path, **kwargs)).status_code
            for method, path, kwargs in REQUESTS * 2
        ]


@pytest.fixture
def both() -> Iterator[tuple[FastAPI, CollectorRegistry, FastAPI]]:
    reference = CollectorRegistry()
    yield api(None), reference, api(reference)


def test_the_same_series_as_the_instrumentators(
    both: tuple[FastAPI, CollectorRegistry, FastAPI],
) -> None:
    lean, reference_registry, reference = both
    statuses = [status for app in (lean, reference) for status in asyncio.run(answers(app))]
    assert {s // 100 for s in statuses} == {2, 4, 5}
    assert statuses[: len(statuses) // 2] == statuses[len(statuses) // 2 :]
    ours = http_samples(lean.state.metrics.registry)
    theirs = http_samples(reference_registry)
    assert ours[0] == theirs[0] and len(ours[0]) >= 10
    assert ours[1] == theirs[1]
    handlers = {dict(labels).get("handler") for _, labels in ours[1]}
    assert {"/add", "/result/{task_id}", "/workflows/{workflow_id}/events", "none"} <= handlers
    assert "/metrics" not in handlers


def request_for(app: object, method: str, path: str) -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "app": app,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/add"),
        ("GET", "/add"),  # 405: the same handler label
        ("POST", "/tasks"),
        ("GET", "/tasks"),
        ("GET", "/result/1234"),
        ("GET", "/workflows/abc/events"),
        ("GET", "/nowhere"),
        ("GET", "/result/{task_id}"),
        ("GET", "/metrics"),
    ],
)
def test_handler_labels_equal_the_instrumentators(method: str, path: str) -> None:
    app = create_app(Settings())
    [entry] = [m for m in app.user_middleware if m.cls is HttpMetrics]
    ours = HttpMetrics(app, *entry.args, **entry.kwargs)
    plain = PrometheusInstrumentatorMiddleware(
        app, registry=CollectorRegistry(), excluded_handlers=["/metrics"]
    )
    handler, templated = plain._get_handler(request_for(app, method, path))
    excluded = plain._is_handler_excluded(handler, templated)
    want = (handler if templated else "none", excluded)
    assert ours.handler(request_for(app, method, path).scope) == want
    assert ours.handler(request_for(app, method, path).scope) == want  # from the cache
    # Kept only when the handler is the path itself (a route without parameters).
    assert ((method, "", path) in ours._static) == (handler == path and templated)
