"""Session fixtures that start the real stack: redis-server, a prefork worker, uvicorn."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import ControlPlane, MissingBinaryError
from tests.support.stack import (
    IDLE_DB,
    ApiServer,
    RedisServer,
    StackEnv,
    Worker,
    running_api,
    running_redis,
    running_worker,
)


@pytest.fixture(scope="session")
def kube_api() -> Iterator[ControlPlane]:
    """A running control plane: .kubeconfig, .server, .kubectl(*args), .apply(...), .env()."""
    missing = None
    try:
        cp = ControlPlane()
    except MissingBinaryError as exc:
        missing = str(exc)
    if missing:  # outside the except block: one clear message, no exception chain
        pytest.fail(missing, pytrace=False)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[RedisServer]:
    with running_redis(stack_dir / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer, stack_dir: Path) -> StackEnv:
    return StackEnv(broker_url=redis_server.url(0), workdir=stack_dir)


@pytest.fixture(scope="session")
def worker(stack: StackEnv) -> Iterator[Worker]:
    with running_worker(stack, "w1", concurrency=2) as w:
        yield w


@pytest.fixture(scope="session")
def idle_api(redis_server: RedisServer, stack_dir: Path) -> Iterator[ApiServer]:
    """The API sending to IDLE_DB, so a mistaken enqueue would stay in the queue."""
    stack = StackEnv(broker_url=redis_server.url(IDLE_DB), workdir=stack_dir / "idle")
    stack.workdir.mkdir(exist_ok=True)
    with running_api(stack) as server:
        yield server


@pytest.fixture(scope="session")
def api(stack: StackEnv, worker: Worker) -> Iterator[ApiServer]:
    with running_api(stack) as server:
        yield server
