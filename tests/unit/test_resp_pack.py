"""T0: async_client.pack writes the bytes redis-py's pack_commands writes, or declines."""

from typing import Any

import pytest
import redis.asyncio as aredis

from celery_harder.async_client import pack

COMMANDS: list[list[tuple[Any, ...]]] = [
    [("MULTI",), ("SET", "k", 1, "EX", 86400), ("LPUSH", "q", '{"a": "ünï"}'), ("EXEC",)],
    [("GET", "celery-task-meta-x"), ("EXISTS", b"raw\r\nbytes")],
    [("SET", "", ""), ("INCRBY", "n", -(2**70))],
    [("PUBLISH", "/0.celeryev/task.sent", "x" * 100_000)],  # past redis-py's buffer cutoff
]


@pytest.mark.parametrize("commands", COMMANDS)
def test_pack_equals_redis_py(commands: list[tuple[Any, ...]]) -> None:
    assert pack(commands) == b"".join(aredis.Connection().pack_commands(commands))


@pytest.mark.parametrize("arg", [1.5, True, None, memoryview(b"x")])
def test_other_types_are_left_to_redis_py(arg: Any) -> None:
    assert pack([("SET", "k", arg)]) is None
