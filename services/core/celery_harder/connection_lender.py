"""Connections to one Redis lent for one round trip at a time: the API's pool."""

import asyncio
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError


class ConnectionLender:
    """At most `limit` connections to the Redis at `url`, each lent to one call at a time.

    redis-py's BlockingConnectionPool takes a condition, a timeout scope and an
    async-generator lock for every connection it hands out, and records observability
    figures on every get and release: 8% of POST /add's CPU (py-spy during bench B1).
    Here a loan is a semaphore and a list pop. Callers past the limit wait on the
    semaphore, bounded by their own deadline, as they waited on the blocking pool.
    Before every loan a connection the server closed meanwhile (a Redis restart, a
    CLIENT KILL) is reconnected, so it costs no failed call. redis-py's own check
    (`ensure_connection`) skips that whenever maintenance notifications are "auto",
    redis-py 8's default, and the call on such a connection failed.
    """

    def __init__(self, url: str, limit: int, **options: Any) -> None:
        # redis-py's pool stays the factory: URL parsing, connection class, options.
        self._factory = aredis.ConnectionPool.from_url(url, **options)
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[AbstractConnection] = []
        self._made: list[AbstractConnection] = []

    async def borrow(self) -> AbstractConnection:
        """A connected connection, once fewer than `limit` are lent."""
        await self._slots.acquire()
        try:
            conn = self._idle.pop() if self._idle else self._make()
        except BaseException:
            self._slots.release()
            raise
        try:
            await self._ready(conn)
        except BaseException:
            self.give_back(conn)
            raise
        return conn

    def give_back(self, conn: AbstractConnection) -> None:
        """Return a connection whose replies were all read (or that was disconnected)."""
        self._idle.append(conn)
        self._slots.release()

    @staticmethod
    async def _ready(conn: AbstractConnection) -> None:
        """Connect a new connection; reconnect one the server closed since its last loan.

        Nothing is ever left to read on a connection given back here (`execute` reads
        every reply or disconnects), so a readable one was closed by the server.
        """
        await conn.connect()  # type: ignore[no-untyped-call]
        try:
            stale = await conn.can_read()
        except RedisConnectionError:  # redis-py's "Buffer is closed"
            stale = True
        if stale:
            await conn.disconnect()
            await conn.connect()  # type: ignore[no-untyped-call]

    def _make(self) -> AbstractConnection:
        conn: AbstractConnection = self._factory.make_connection()  # type: ignore[no-untyped-call]
        self._made.append(conn)
        return conn

    @property
    def opened(self) -> int:
        """How many connections this lender has made (it never makes more than `limit`)."""
        return len(self._made)

    async def aclose(self) -> None:
        """Disconnect every connection made, lent or idle."""
        for conn in self._made:
            await conn.disconnect(nowait=True)
        await self._factory.aclose()
