"""Submit tasks and read their status on the event loop, with redis.asyncio.

The API's hot path. A submission is one round trip: MULTI, the issued-id mark, the
LPUSH of the message, the PUBLISH of its task-sent event, EXEC, written in one
socket write on a connection lent by a ConnectionLender (TaskMessages builds the
commands; the sync TaskClient sends the very same ones). A status read is one round trip too: GET of
the result key and EXISTS of the issued mark. Nothing hops into a thread, nothing
builds a redis-py Pipeline per call, and no kombu exchange is looked up.

Every call has one deadline, redis_timeout + 1 s (3 s by default), enforced by
asyncio.timeout around the whole round trip rather than per socket read: past it, or
on any Redis error, the caller gets BrokerUnavailable (the API's 503). A connection
that failed or timed out mid-call is disconnected, never lent again with unread replies.
"""

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from celery_harder import keys
from celery_harder.connection_lender import ConnectionLender
from celery_harder.publish import Command, Outgoing, exec_replies, transaction
from celery_harder.results import TaskStatus, describe_meta
from celery_harder.task_client import REDIS_ERRORS, BrokerUnavailable, TaskClient

# Connections per Redis for the API process. A call holds one for a single round trip,
# so a few dozen serve hundreds of concurrent requests; more callers wait for one.
MAX_CONNECTIONS = 64


def pack(commands: Sequence[Command], encoding: str = "utf-8") -> bytes | None:
    """RESP for `commands` whose arguments are str, bytes or int; None for any other type.

    The bytes redis-py's `pack_commands` writes for them (str encoded strictly, int in
    decimal, one bulk string each), in a quarter of its time; other types (floats,
    memoryviews, its DataError for bool and None) are left to redis-py.
    """
    out: list[bytes] = []
    append = out.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is str:
                data = arg.encode(encoding)
            elif kind is bytes:
                data = arg
            elif kind is int:
                data = b"%d" % arg
            else:
                return None
            append(b"$%d\r\n" % len(data))
            append(data)
            append(b"\r\n")
    return b"".join(out)


async def execute(lender: ConnectionLender, commands: Sequence[Command]) -> list[Any]:
    """Send `commands` in one write on a lent connection and read every reply.

    Any failure (an error reply, a timeout, a cancellation) disconnects the connection
    before it goes back to the lender, so no later call reads this call's replies.
    """
    conn = await lender.borrow()
    try:
        encoder = conn.encoder
        packed = pack(commands, encoder.encoding) if encoder.encoding_errors == "strict" else None
        payload = packed if packed is not None else conn.pack_commands(commands)
        await conn.send_packed_command(payload, check_health=False)
        # timeout=inf: no timer per reply (redis-py arms one for every read otherwise,
        # which cost as much as the round trip); the caller's deadline bounds the call.
        return [await conn.read_response(timeout=math.inf) for _ in commands]
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        lender.give_back(conn)


class AsyncTaskClient:
    """The TaskClient's submit and status, on the event loop."""

    def __init__(self, client: TaskClient) -> None:
        self.client = client
        settings = client.settings
        # The bound the thread hop had (redis_timeout + 1): it covers the wait for a lent
        # connection and for the loop under load, not only Redis's answer.
        self.deadline = settings.redis_timeout + 1

        def connect(url: str) -> ConnectionLender:
            return ConnectionLender(
                url,
                MAX_CONNECTIONS,
                socket_connect_timeout=settings.redis_timeout,
                socket_timeout=settings.redis_timeout,
            )

        self.broker = connect(settings.broker_url)
        self.results = self.broker if client.shared_redis else connect(settings.result_backend_url)
        self._backend = client.app.backend
        self._meta_key = self._backend.get_key_for_task

    async def submit(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
    ) -> str:
        """TaskClient.submit without a thread: validate, mark as issued, send; one round trip."""
        outgoing = self.client.prepare(name, args, kwargs, queue=queue)
        if outgoing is None:  # a configuration TaskMessages does not cover
            task_id: str = await self._in_thread(
                self.client.submit, name, args, kwargs, queue=queue
            )
            return task_id
        try:
            async with asyncio.timeout(self.deadline):
                await self.send(outgoing)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"Redis did not answer within {self.deadline:.1f}s") from exc
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not send {name!r}: {exc}") from exc
        return outgoing.task_id

    async def send(self, outgoing: Outgoing) -> None:
        """The same commands as TaskClient.send, in the same order."""
        if self.client.shared_redis:
            commands = transaction([*outgoing.results, *outgoing.broker])
            exec_replies(await execute(self.broker, commands))
            return
        await execute(self.results, outgoing.results)
        try:
            exec_replies(await execute(self.broker, transaction(outgoing.broker)))
        except BaseException:
            await self._forget_quietly(outgoing.task_id)
            raise

    async def status(self, task_id: str) -> TaskStatus | None:
        """TaskClient.status without a thread: a task's status, None if never issued."""
        commands = [("GET", self._meta_key(task_id)), ("EXISTS", keys.ISSUED + task_id)]
        try:
            async with asyncio.timeout(self.deadline):
                raw, issued = await execute(self.results, commands)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"Redis did not answer within {self.deadline:.1f}s") from exc
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"could not read {task_id}: {exc}") from exc
        if raw is None and not issued:
            return None
        meta = self._backend.decode(raw) if raw is not None else None
        return describe_meta(task_id, meta)

    async def close(self) -> None:
        """Close the connections."""
        await self.broker.aclose()
        if self.results is not self.broker:
            await self.results.aclose()

    async def _forget_quietly(self, task_id: str) -> None:
        try:
            async with asyncio.timeout(self.deadline):
                await execute(self.results, [("DEL", keys.ISSUED + task_id)])
        except (TimeoutError, *REDIS_ERRORS):
            pass  # Redis is down; the mark expires with the results anyway.

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self.deadline):
                return await asyncio.to_thread(fn, *args, **kwargs)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"Redis did not answer within {self.deadline:.1f}s") from exc
