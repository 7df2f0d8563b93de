"""Poll the API until a condition holds, with a deadline."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

# What a probe may raise while the thing it waits for is not there yet.
NOT_YET = (OSError, ValueError, LookupError, httpx.HTTPError, redis.RedisError)


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
        except NOT_YET as exc:  # not up yet: keep polling
            last_exc = exc
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


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
