"""T0: StaticRouteNames gives the instrumentator's own handler labels, cached or not."""

import pytest
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request

from celery_harder.settings import Settings
from celery_harder_api.app import create_app
from celery_harder_api.metrics import StaticRouteNames


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
        ("GET", "/result/1234"),
        ("GET", "/workflows/abc/events"),
        ("GET", "/nowhere"),
        ("GET", "/result/{task_id}"),
    ],
)
def test_cached_handler_labels_equal_the_instrumentators(method: str, path: str) -> None:
    app = create_app(Settings())
    [entry] = [m for m in app.user_middleware if m.cls is StaticRouteNames]
    cached = StaticRouteNames(app, *entry.args, **entry.kwargs)
    plain = PrometheusInstrumentatorMiddleware(app, *entry.args, **entry.kwargs)
    want = plain._get_handler(request_for(app, method, path))
    assert cached._get_handler(request_for(app, method, path)) == want
    assert cached._get_handler(request_for(app, method, path)) == want  # from the cache
    # Kept only when the handler is the path itself (a route without parameters).
    assert (("", path) in cached._static) == (want == (path, True))
