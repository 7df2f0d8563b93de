"""Status pushed, not only polled: the operator hears each leaf's result as it is stored.

Celery's Redis result backend PUBLISHes every state it stores (STARTED, PROGRESS,
SUCCESS, FAILURE, REVOKED) on a channel named after the result key,
`celery-task-meta-<task id>`; its own `AsyncResult.get()` waits on that channel. So
workers already announce every leaf of a workflow, and no worker code changes. The
operator subscribes, on one connection, to the channels of the unfinished leaves of
the workflows it follows, and a message wakes that workflow's sync timer, which then
reads the status (two round trips, as before) and patches the resource.

Pub/Sub reaches only who listens at that moment: a message sent while the operator
is down, reconnecting, or not yet subscribed is lost. So the timer still reads every
poll interval whatever it hears (the fallback, and all there is when Redis Pub/Sub is
out of reach), and after subscribing to new leaves it reads once more at once, so a
leaf that finished between a read and its subscription is seen then, not a poll later.
A restarted operator starts from nothing: its resume handler and the timer's first
read find the state in Redis, as they always did.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

import kopf
import redis
import redis.asyncio as aioredis
from celery import states

from celery_harder.settings import get_settings
from celery_harder.workflow.status import FINAL_PHASES
from celery_harder_operator.resource import GROUP, PLURAL, VERSION, workflow_id

logger = logging.getLogger(__name__)

# Always subscribed, so the reader has a connection to block on before any workflow.
CONTROL_CHANNEL = b"celery-harder:operator:follow"
RECONNECT_DELAY = 1.0
ERRORS = (redis.RedisError, OSError)


def is_final_state(data: Any) -> bool:
    """Whether a published result meta is a leaf's last word (SUCCESS, FAILURE, REVOKED)."""
    try:
        meta = json.loads(data)
    except (TypeError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("status") in states.READY_STATES


class Follower:
    """One Pub/Sub connection; a wake-up event per followed workflow."""

    def __init__(self) -> None:
        self._url: str | None = None
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._owner: dict[bytes, str] = {}  # channel -> workflow id
        self._channels: dict[str, set[bytes]] = {}  # workflow id -> its channels
        self._pending: dict[str, set[bytes]] = {}  # ... those not yet heard final
        self._settled: set[str] = set()  # every followed leaf has been heard final
        self._events: dict[str, asyncio.Event] = {}
        self.connected = False
        self._warned = False

    async def start(self, url: str) -> None:
        """Connect and start reading; a Redis that is not there yet is retried in the reader."""
        self._url = url
        self._reader = asyncio.create_task(self._read(), name="celery-harder follower")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
            self._reader = None
        await self._close()

    def event(self, wid: str) -> asyncio.Event:
        """The workflow's wake-up event (made on first use)."""
        found = self._events.get(wid)
        if found is None:
            found = self._events[wid] = asyncio.Event()
        return found

    def following(self, wid: str) -> bool:
        return wid in self._events

    def wake(self, wid: str) -> None:
        """Make the workflow's next wait return at once (a spec change, a new subscription)."""
        self.event(wid).set()

    async def follow(self, wid: str, channels: Iterable[bytes]) -> bool:
        """Subscribe to the workflow's channels not yet subscribed; whether any were new."""
        self.event(wid)
        # The read just made is the truth on which leaves are still to be heard.
        self._pending[wid] = unfinished = set(channels)
        self._settled.discard(wid)
        mine = self._channels.setdefault(wid, set())
        new = [c for c in unfinished if c not in mine]
        if not new:
            return False
        mine.update(new)
        for channel in new:
            self._owner[channel] = wid
        if self.connected:
            try:
                await self._pubsub.subscribe(*new)
            except ERRORS as exc:
                # The reader reconnects and subscribes to every channel it then knows.
                logger.warning("follower: subscribe failed (%s); polling carries on", exc)
        return True

    async def forget(self, wid: str) -> None:
        """Stop following a workflow (finished, deleted, or no longer timed)."""
        self._events.pop(wid, None)
        self._pending.pop(wid, None)
        self._settled.discard(wid)
        channels = self._channels.pop(wid, set())
        for channel in channels:
            self._owner.pop(channel, None)
        if channels and self.connected:
            try:
                await self._pubsub.unsubscribe(*channels)
            except ERRORS as exc:
                logger.warning("follower: unsubscribe failed (%s)", exc)

    def heard(self, channel: bytes, data: Any) -> str | None:
        """Record one published message; the workflow to wake, if it is one of ours."""
        wid = self._owner.get(channel)
        if wid is not None and is_final_state(data):
            pending = self._pending.get(wid)
            if pending is not None:
                pending.discard(channel)
                if not pending:
                    self._settled.add(wid)
        return wid

    def take_settled(self, wid: str) -> bool:
        """Whether every leaf followed since the last read has finished (then read at once)."""
        if wid in self._settled:
            self._settled.discard(wid)
            return True
        return False

    async def wait(self, wid: str, timeout: float, stopped: Awaitable[Any] | None = None) -> None:
        """Until a leaf speaks, `stopped` (if given) is set, or `timeout` passes; then re-arm."""
        event = self.event(wid)
        if not event.is_set():
            waits = {asyncio.ensure_future(event.wait())}
            if stopped is not None:
                waits.add(asyncio.ensure_future(stopped))
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        elif asyncio.iscoroutine(stopped):
            stopped.close()  # not awaited: close it rather than leave it to warn
        event.clear()

    async def _connect(self) -> None:
        assert self._url is not None
        self._client = aioredis.Redis.from_url(self._url, socket_connect_timeout=5)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(CONTROL_CHANNEL, *self._owner)
        self.connected = True

    async def _close(self) -> None:
        self.connected = False
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        for closing in (pubsub, client):
            if closing is not None:
                try:
                    await closing.aclose()
                except ERRORS:
                    pass

    async def _read(self) -> None:
        while True:
            try:
                if not self.connected:
                    await self._connect()
                    self._warned = False
                    # Whatever was published while not listening is lost: read everything.
                    for event in self._events.values():
                        event.set()
                message = await self._pubsub.get_message(timeout=None)
            except ERRORS as exc:
                if self.connected or not self._warned:
                    # Once per outage, not once a second while it lasts.
                    logger.warning("follower: Redis Pub/Sub unavailable (%s); polling goes on", exc)
                    self._warned = True
                await self._close()
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            if message and message.get("type") == "message":
                wid = self.heard(message["channel"], message.get("data"))
                if wid is not None:
                    self.event(wid).set()


FOLLOWER = Follower()


# ------------------------------------------------------------ the sync timer's side

# Threads for the handlers' Redis calls (kopf's pool of sync handlers, and the sync
# timer's reads): they wait on round trips, so many more than there are cores.
THREADS = 32
# kopf's sleep between two runs of the sync timer. The timer itself waits in
# `before_read` for a leaf to speak or the poll interval to pass, so this only hands
# control back to kopf (which applies the patch) between two reads.
TICK = 0.01
# Least time between two reads of one workflow: a burst of leaf results (a group of
# 1,000 finishing) becomes a read and a patch every gap, not one per message. The
# gap grows with the run's age, a tenth of it, from GAP to MAX_GAP: a long chain is
# read some 20 times in its first 2 s instead of 40, and its end is seen at most a
# tenth of its run time late (the reads and patches compete for the same cores as
# the worker running the chain).
GAP = 0.05
MAX_GAP = 0.5
GAP_FRACTION = 0.1
# How long the create handler waits for a new workflow's leaves to end before it reads
# the first status. A small workflow done by then gets one /status PATCH, its final
# one, instead of a Running one and then the final one, and never starts the sync
# timer: a PATCH, a watch event and a timer's start and stop fewer per resource.
# Longer workflows show their first phase this much later. The wait ends as soon as
# the last leaf is heard, so it costs a small workflow nothing; 0.1 s was too short
# on a loaded machine, where a two-step chain can take longer and then paid for the
# extra writes, which loaded it more (Kubernetes' Job controller batches a Job's
# status updates over 1 s for the same reason).
FIRST_READ_GRACE = 0.5
# How long a published final phase is remembered: until kopf's watch shows it and
# stops the timer, a run started from the older body must not post the Event twice.
FINAL_MEMORY = 60.0


class SyncState:
    """Per-workflow memory of the sync timer (in-process: a restart begins afresh)."""

    def __init__(self) -> None:
        self.first_read: dict[str, float] = {}
        self.last_read: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def gap(self, wid: str, now: float) -> float:
        """The least time between two reads of this workflow, now."""
        age = now - self.first_read.get(wid, now)
        return max(GAP, min(MAX_GAP, GAP_FRACTION * age))

    def mark_read(self, wid: str, now: float) -> None:
        """A read of this workflow happens now (the first one starts its age)."""
        self.last_read[wid] = now
        self.first_read.setdefault(wid, now)

    def drop(self, wid: str) -> None:
        self.first_read.pop(wid, None)
        self.last_read.pop(wid, None)

    def remember_final(self, wid: str, now: float) -> None:
        self.finished[wid] = now
        self.drop(wid)
        for old in [w for w, at in self.finished.items() if now - at > FINAL_MEMORY]:
            del self.finished[old]


STATE = SyncState()


async def before_read(wid: str, poll_interval: float, stopped: Any) -> bool:
    """Wait until the workflow is worth reading; False when the timer should just return.

    The first run reads at once. Later runs wait for one of the workflow's leaves to
    publish, or the poll interval, whichever comes first, and keep a gap between reads,
    unless every leaf followed has published its final state: the run is then over
    (or moves on to leaves not yet followed), and the read that shows it comes at once.
    A workflow whose final phase this process has published is not read again.
    """
    loop = asyncio.get_running_loop()
    if wid in STATE.finished:
        await stopped.wait(poll_interval)  # kopf stops the timer once it sees the phase
        return False
    last = STATE.last_read.get(wid)
    if last is not None:
        await FOLLOWER.wait(wid, max(0.0, last + poll_interval - loop.time()), stopped.wait())
        settled = FOLLOWER.take_settled(wid)
        pause = last + STATE.gap(wid, loop.time()) - loop.time()
        if pause > 0 and not stopped and not settled:
            await stopped.wait(pause)
    if stopped:
        await forget(wid)
        return False
    STATE.mark_read(wid, loop.time())
    return True


async def listen(wid: str, channels: Iterable[bytes]) -> None:
    """Follow a new workflow's leaves before it is sent, so that no leaf's end goes unheard.

    Subscribed after the send, a short leaf could end before the subscription, and the
    create handler's wait would then run its whole grace for nothing.
    """
    await FOLLOWER.follow(wid, channels)


async def settle(wid: str, grace: float = FIRST_READ_GRACE) -> None:
    """Wait up to `grace` for every leaf `listen` follows to end.

    The read that comes next counts as the sync timer's first: the timer then waits for
    a leaf to publish (or the poll interval), as after any read. A message Pub/Sub lost
    (Redis reconnecting) makes the wait run its full grace; the read then finds the
    leaves' states in Redis all the same.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while not FOLLOWER.take_settled(wid) and (left := deadline - loop.time()) > 0:
        await FOLLOWER.wait(wid, left)
    STATE.mark_read(wid, loop.time())


async def after_read(wid: str, channels: Iterable[bytes], final: bool) -> None:
    """Follow the unfinished leaves' channels; stop following at the end."""
    if final:
        STATE.remember_final(wid, asyncio.get_running_loop().time())
        await FOLLOWER.forget(wid)
        return
    if await FOLLOWER.follow(wid, channels):
        # Newly subscribed: whatever finished since the read was not heard; read again.
        FOLLOWER.wake(wid)


async def forget(wid: str) -> None:
    STATE.drop(wid)
    await FOLLOWER.forget(wid)


@kopf.on.startup()
async def start_following(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Listen to the result backend's Pub/Sub (the same Redis the results are in)."""
    # The sync timer's reads (asyncio.to_thread) share the pool of kopf's sync handlers.
    asyncio.get_running_loop().set_default_executor(settings.execution.executor)
    await FOLLOWER.start(get_settings().result_backend_url)


@kopf.on.cleanup()
async def stop_following(**_: Any) -> None:
    await FOLLOWER.stop()


# A raw-event handler: kopf stores nothing for it and calls it only for resources
# that carry spec.shutdown. It cuts the wait short, so a shutdown is acted on at once.
@kopf.on.event(GROUP, VERSION, PLURAL, field="spec.shutdown", value=kopf.PRESENT)
async def shutdown_requested(uid: str, status: kopf.Status, **_: Any) -> None:
    wid = workflow_id(uid)
    if status.get("phase") not in FINAL_PHASES and FOLLOWER.following(wid):
        FOLLOWER.wake(wid)
