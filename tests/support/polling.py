"""Poll the API until a condition holds, with a deadline."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

from celery_harder_dev import polling

# What a probe may raise while the thing it waits for is not there yet.
NOT_YET = (OSError, ValueError, LookupError, httpx.HTTPError, redis.RedisError)


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """The dev package's poll in the tests' argument order, retrying only NOT_YET errors."""
    return polling.wait_until(predicate, timeout, what, interval, retry_on=NOT_YET)


def poll_json(
    client: httpx.Client,
    path: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
    interval: float = 0.05,
) -> dict[str, Any]:
    """GET `path` until `until(body)` is true; the last body, or AssertionError with it."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(path)
        response.raise_for_status()
        body = response.json()
        if until(body):
            return body
        time.sleep(interval)
    raise AssertionError(f"{path} did not reach the expected state in {timeout}s: {body}")


def wait_done(client: httpx.Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The task's /result once its state is final."""
    return poll_json(
        client,
        f"/result/{task_id}",
        lambda b: b["state"] in ("SUCCESS", "FAILURE", "REVOKED"),
        timeout,
    )
