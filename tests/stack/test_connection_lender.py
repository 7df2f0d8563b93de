"""T1: the API's ConnectionLender on a real redis-server: bounded, reconnecting, never stale.

Each test names its connections (CLIENT SETNAME through redis-py's `client_name`) and
counts them in the server's CLIENT LIST, so what Redis sees is checked, not only what
the lender says.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from celery_harder.async_client import execute
from celery_harder.connection_lender import ConnectionLender
from celery_harder_dev.stack import RedisServer

DB = 11


def named(server: RedisServer, name: str) -> list[dict[str, Any]]:
    """The server's clients that carry `name`."""
    return [c for c in server.client(DB).client_list() if c["name"] == name]


def with_lender(
    server: RedisServer, limit: int, call: Callable[[ConnectionLender, str], Awaitable[Any]]
) -> tuple[Any, str]:
    """Run `call(lender, name)` on a loop of its own; the lender is closed afterwards."""
    name = f"lender-{uuid.uuid4().hex[:8]}"

    async def main() -> Any:
        lender = ConnectionLender(server.url(DB), limit, client_name=name)
        try:
            return await call(lender, name)
        finally:
            await lender.aclose()

    return asyncio.run(main()), name


def test_a_burst_shares_at_most_limit_connections(redis_server: RedisServer) -> None:
    async def burst(lender: ConnectionLender, name: str) -> tuple[list[Any], int, int]:
        replies = await asyncio.gather(*(execute(lender, [("ECHO", str(i))]) for i in range(40)))
        return replies, lender.opened, len(named(redis_server, name))

    (replies, opened, seen), name = with_lender(redis_server, 4, burst)
    assert replies == [[str(i).encode()] for i in range(40)]
    assert opened == 4 and seen == 4  # the burst took every slot, and no more
    assert named(redis_server, name) == []  # aclose disconnected them all


def test_a_connection_the_server_closed_is_reconnected_without_a_failed_call(
    redis_server: RedisServer,
) -> None:
    async def killed_while_idle(lender: ConnectionLender, name: str) -> tuple[Any, int]:
        conn = await lender.borrow()
        (victim,) = named(redis_server, name)
        redis_server.client(DB).client_kill_filter(_id=victim["id"])
        # As after a Redis restart: the event loop has seen the socket close (can_read is
        # True at EOF) by the time the connection is lent again.
        deadline = asyncio.get_running_loop().time() + 5
        while not await conn.can_read():
            assert asyncio.get_running_loop().time() < deadline, "the close was never seen"
            await asyncio.sleep(0.01)
        lender.give_back(conn)
        return await execute(lender, [("ECHO", "after")]), lender.opened

    (reply, opened), _ = with_lender(redis_server, 2, killed_while_idle)
    assert reply == [b"after"] and opened == 1


def test_a_failed_call_leaves_no_reply_for_the_next(redis_server: RedisServer) -> None:
    key = f"lender-list-{uuid.uuid4().hex[:8]}"
    redis_server.client(DB).rpush(key, "x")

    async def error_then_echo(lender: ConnectionLender, name: str) -> list[Any]:
        # INCR of a list fails; PING's reply is still unread on that connection.
        with pytest.raises(redis.ResponseError):
            await execute(lender, [("INCR", key), ("PING",)])
        return await execute(lender, [("ECHO", "next")])

    after, _ = with_lender(redis_server, 1, error_then_echo)
    assert after == [b"next"]


def test_a_caller_cancelled_while_waiting_takes_no_slot(redis_server: RedisServer) -> None:
    async def cancel_a_waiter(lender: ConnectionLender, name: str) -> list[Any]:
        held = await lender.borrow()
        waiter = asyncio.create_task(lender.borrow())
        await asyncio.sleep(0)  # a turn of the loop: the waiter blocks on the full lender
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lender.give_back(held)
        return await asyncio.wait_for(execute(lender, [("ECHO", "free")]), 5)

    reply, _ = with_lender(redis_server, 1, cancel_a_waiter)
    assert reply == [b"free"]
