"""T1: bad input answers 422 or 413 and enqueues nothing; an unreachable Redis answers 503.

The API here sends to a Redis database no worker consumes, so anything enqueued by
mistake would stay visible in the queue.
"""

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import (
    IDLE_DB,
    ApiServer,
    RedisServer,
    StackEnv,
    queued_messages,
    running_api,
)

OVERSIZE = 1_048_576 + 1

BAD_REQUESTS = [
    ("/add", {"x": "two", "y": 3}, 422),
    ("/add", {"x": 2}, 422),
    ("/add", {"x": 2, "y": 3, "z": 4}, 422),
    ("/add", [2, 3], 422),
    ("/add", "NaN-literal", 422),
    ("/add", "Infinity-literal", 422),
    ("/add", "overflow-literal", 422),
    ("/test-request-info", {}, 422),
    ("/tasks", {"task": "no_such_task"}, 422),
    ("/tasks", {"task": "add", "args": [1]}, 422),
    ("/tasks", {"task": "sleep", "args": [-1]}, 422),
    ("/tasks", {"task": "add", "args": [1, 2, 3]}, 422),
    ("/tasks", {"task": "documents.write_report", "kwargs": {"stats": {}, "name": "../evil"}}, 422),
    ("/test-request-info", "oversize", 413),
]
RAW_BODIES = {
    "NaN-literal": b'{"x": NaN, "y": 1}',
    "Infinity-literal": b'{"x": Infinity, "y": 1}',
    "overflow-literal": b'{"x": 1e400, "y": 1}',
    "oversize": b'{"data": "' + b"a" * OVERSIZE + b'"}',
}


@pytest.mark.parametrize(("path", "body", "expected"), BAD_REQUESTS)
def test_bad_input_is_refused_and_enqueues_nothing(
    idle_api: ApiServer, redis_server: RedisServer, path: str, body: object, expected: int
) -> None:
    keys_before = redis_server.client(IDLE_DB).dbsize()
    queued_before = queued_messages(redis_server)
    with idle_api.client() as client:
        if isinstance(body, str):
            response = client.post(
                path, content=RAW_BODIES[body], headers={"content-type": "application/json"}
            )
        else:
            response = client.post(path, json=body)
    assert response.status_code == expected, response.text
    assert "detail" in response.json()
    assert queued_messages(redis_server) == queued_before
    assert redis_server.client(IDLE_DB).dbsize() == keys_before


def test_chunked_oversize_body_is_413(idle_api: ApiServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"data": "'
        for _ in range(OVERSIZE // 65536 + 1):
            yield b"a" * 65536
        yield b'"}'

    with idle_api.client() as client:
        response = client.post(
            "/test-request-info", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413


def test_the_check_sees_an_enqueued_message(idle_api: ApiServer, redis_server: RedisServer) -> None:
    """The queue check above can fail: a good request does show up in the idle queue."""
    before = queued_messages(redis_server)
    with idle_api.client() as client:
        assert client.post("/add", json={"x": 1, "y": 1}).status_code == 202
    assert queued_messages(redis_server) == before + 1


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung Redis)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_broker_answers_503_quickly(
    kind: str, silent_port: int, stack_dir: Path
) -> None:
    if kind == "refused":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed again: connections are refused
    else:
        port = silent_port
    stack = StackEnv(broker_url=f"redis://127.0.0.1:{port}/0", workdir=stack_dir / f"down-{kind}")
    stack.workdir.mkdir(exist_ok=True)
    with running_api(stack) as server, server.client(timeout=10) as client:
        for method, path, body in [
            ("POST", "/add", {"x": 1, "y": 2}),
            ("GET", "/result/whatever", None),
            ("GET", "/readyz", None),
        ]:
            started = time.monotonic()
            response = client.request(method, path, json=body)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "broker unavailable" in response.json()["detail"]
            assert elapsed < 4.0, f"{path} took {elapsed:.1f}s"


def test_submitting_does_not_block_the_event_loop(silent_port: int, stack_dir: Path) -> None:
    stack = StackEnv(broker_url=f"redis://127.0.0.1:{silent_port}/0", workdir=stack_dir / "loop")
    stack.workdir.mkdir(exist_ok=True)
    with (
        running_api(stack) as server,
        server.client(timeout=10) as slow,
        server.client() as fast,
    ):
        stuck = threading.Thread(target=lambda: slow.post("/add", json={"x": 1, "y": 1}))
        stuck.start()
        try:
            # While the submission waits on a Redis that never answers, the loop serves.
            started = time.monotonic()
            for _ in range(5):
                assert fast.get("/healthz").status_code == 200
            assert time.monotonic() - started < 1.0
            assert stuck.is_alive(), "the submission should still be waiting"
        finally:
            stuck.join(timeout=10)
