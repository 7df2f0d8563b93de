"""Fixtures the T1 stack tests share."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_harder_dev.stack import RedisServer, running_redis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for counts no other test may disturb."""
    with running_redis(tmp_path / "private-redis") as server:
        yield server
