"""Poll the API until a condition holds, with a deadline."""

import time
from collections.abc import Callable
from typing import Any

import httpx


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
