"""T1: API keys against a real uvicorn and Redis: 401 without or with a wrong key, 403
without the scope, the probes and metrics open, nothing enqueued for a refused request."""

from pathlib import Path

import httpx
import pytest

from celery_harder_dev.polling import ProcessExited
from tests.support.stack import (
    KEYS,
    ApiServer,
    RedisServer,
    StackEnv,
    queued_messages,
    running_api,
)

WORKFLOW = {"workflow": {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}}
SUBMIT_ROUTES = [
    ("POST", "/add", {"x": 2, "y": 3}),
    ("POST", "/test-request-info", {"data": 1}),
    ("POST", "/tasks", {"task": "add", "args": [1, 2]}),
    ("POST", "/chain", {"steps": [{"task": "add", "args": [1, 2]}]}),
    ("POST", "/group", {"tasks": [{"task": "add", "args": [1, 2]}]}),
    ("POST", "/chord", {"header": [{"task": "add", "args": [1, 2]}], "body": {"task": "xsum"}}),
    ("POST", "/workflows", WORKFLOW),
    ("POST", "/documents", {"text": "a b\n"}),
    ("DELETE", "/workflows/some-id", None),
]
READ_ROUTES = ["/tasks", "/result/some-id", "/workflows/some-id", "/workflows/some-id/events"]


def request(
    api: ApiServer, method: str, path: str, body: object, key: str | None
) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    with httpx.Client(base_url=api.url, timeout=10, headers=headers) as client:
        return client.request(method, path, json=body)


@pytest.mark.parametrize("key", [None, "", "not-a-key", KEYS.full + "x"], ids=repr)
def test_no_key_or_a_wrong_key_is_401_and_enqueues_nothing(
    idle_api: ApiServer, redis_server: RedisServer, key: str | None
) -> None:
    before = queued_messages(redis_server)
    for method, path, body in SUBMIT_ROUTES + [("GET", p, None) for p in READ_ROUTES]:
        response = request(idle_api, method, path, body, key)
        assert response.status_code == 401, f"{method} {path}: {response.text}"
        assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
        assert response.json()["detail"] in (
            "missing API key: send it in the X-API-Key header",
            "invalid API key",
        )
    assert queued_messages(redis_server) == before


def test_a_read_only_key_cannot_submit_or_cancel(
    idle_api: ApiServer, redis_server: RedisServer
) -> None:
    before = queued_messages(redis_server)
    for method, path, body in SUBMIT_ROUTES:
        response = request(idle_api, method, path, body, KEYS.read_only)
        assert response.status_code == 403, f"{method} {path}: {response.text}"
        assert response.json() == {"detail": "API key 'reader' lacks the 'submit' scope"}
    assert queued_messages(redis_server) == before


def test_a_submit_only_key_cannot_read(idle_api: ApiServer) -> None:
    for path in READ_ROUTES:
        response = request(idle_api, "GET", path, None, KEYS.submit_only)
        assert response.status_code == 403, f"GET {path}: {response.text}"


def test_a_submit_key_submits_and_a_read_key_follows(
    idle_api: ApiServer, redis_server: RedisServer
) -> None:
    before = queued_messages(redis_server)
    added = request(idle_api, "POST", "/add", {"x": 2, "y": 3}, KEYS.submit_only)
    assert added.status_code == 202, added.text
    submitted = request(idle_api, "POST", "/workflows", WORKFLOW, KEYS.submit_only)
    assert submitted.status_code == 202, submitted.text
    assert queued_messages(redis_server) == before + 2  # add, and the chain's first step
    wid = submitted.json()["id"]

    task = request(idle_api, "GET", f"/result/{added.json()['task_id']}", None, KEYS.read_only)
    assert task.status_code == 200 and task.json()["state"] == "PENDING", task.text
    status = request(idle_api, "GET", f"/workflows/{wid}", None, KEYS.read_only)
    assert status.status_code == 200 and status.json()["progress"] == "0/2", status.text
    assert request(idle_api, "GET", "/tasks", None, KEYS.read_only).status_code == 200
    headers = {"X-API-Key": KEYS.read_only}
    with (
        httpx.Client(base_url=idle_api.url, timeout=10, headers=headers) as client,
        client.stream("GET", f"/workflows/{wid}/events") as events,
    ):
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        assert next(events.iter_lines()) == "event: status"

    cancelled = request(idle_api, "DELETE", f"/workflows/{wid}", None, KEYS.submit_only)
    assert cancelled.status_code == 202 and cancelled.json()["phase"] == "Cancelled"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_probes_metrics_and_the_document_need_no_key(idle_api: ApiServer, path: str) -> None:
    assert request(idle_api, "GET", path, None, None).status_code == 200


def test_auth_on_without_keys_lets_nobody_in(stack: StackEnv, stack_dir: Path) -> None:
    no_keys = StackEnv(stack.broker_url, stack_dir / "no-keys")
    no_keys.workdir.mkdir(exist_ok=True)
    with running_api(no_keys, {"CELERY_HARDER_API_KEYS": ""}) as api:
        assert request(api, "GET", "/tasks", None, KEYS.full).status_code == 401
        assert request(api, "GET", "/healthz", None, None).status_code == 200


def test_a_malformed_key_configuration_stops_the_api_at_start(
    stack: StackEnv, stack_dir: Path
) -> None:
    bad = StackEnv(stack.broker_url, stack_dir / "bad-keys")
    bad.workdir.mkdir(exist_ok=True)
    with (
        pytest.raises(ProcessExited, match="the digest must be 64 hex digits"),
        running_api(bad, {"CELERY_HARDER_API_KEYS": "ci:read:plaintext-key"}),
    ):
        pass
