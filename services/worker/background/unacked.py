"""kombu's unacked bookkeeping in one script call per message, and acks sent in batches.

kombu's Redis transport emulates acknowledgements: each delivered message is added to
the `unacked` hash and its index (a sorted set of delivery times) in a MULTI/EXEC
pipeline (QoS.append), and an ack removes both in another (QoS.ack). Those two
transactions were a third of the worker's main process CPU while draining a queue
(py-spy, bench B2): four commands packed and four replies parsed each, and a pipeline
object built and reset. A Lua script does the same writes, as atomically (Redis runs a
script as it runs a transaction: a restore's WATCH sees it the same way), in one
command and one reply. The keys, the score and the stored payload are kombu's, so its
restore paths (restore_unacked at shutdown, restore_visible after the visibility
timeout) read them unchanged. The pool processes already need EVALSHA (the task-start
script), so a Redis ACL needs nothing new.

After that, the ack was still a round trip the main process waits for once per task
(17% of its samples). On the worker's event loop, acks are now written together:
ACK_FLUSH_DELAY after the first, one script call removes the records of every ack
since. The record stays in Redis that much longer, so a worker killed in that window
leaves those finished tasks to come back after the visibility timeout (a stored
SUCCESS makes CatalogTask acknowledge the copy without running it; a task that stores
no result runs again). Nothing else waits for the write: kombu's own state forgets
the message at once, as before. A flush that fails (Redis is down) keeps its acks for
the next flush, which also runs before kombu's periodic restore_visible and before a
closing channel restores its messages, so an outage and the consumer restart after it
leave no record behind. Each ack removes a record only if it still holds the score
this delivery wrote: a message put back in the queue and delivered again in the
meantime (same delivery tag, new score) keeps its new record. A channel with kombu's
global_keyprefix keeps kombu's own pipelines: kombu prefixes only the first key of an
EVALSHA, so the scripts would write the hash outside the prefix.
"""

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from time import time
from typing import Any

from kombu.asynchronous import get_event_loop
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from background.deferred_flush import DeferredFlush

# KEYS: the unacked index (sorted set), the unacked hash. ARGV: time, delivery tag, payload.
APPEND = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
"""
# KEYS: as APPEND's. ARGV: pairs of a delivery tag and the score its delivery wrote
# ('' where it is not known: remove whatever record the tag has).
ACK = """
for i = 1, #ARGV, 2 do
  local tag, wrote = ARGV[i], ARGV[i + 1]
  local score = redis.call('ZSCORE', KEYS[1], tag)
  if wrote == '' or (score and tonumber(score) == tonumber(wrote)) then
    redis.call('ZREM', KEYS[1], tag)
    redis.call('HDEL', KEYS[2], tag)
  end
end
"""
# An ack's record waits at most this long for the script call that removes it.
ACK_FLUSH_DELAY = 0.02
# A flush scheduled longer ago than this is presumed dropped; the next ack schedules one.
ACK_FLUSH_STALE = 1.0
_SCRIPTS = "_celery_harder_unacked_scripts"
_SCORES = "_celery_harder_unacked_scores"  # delivery tag -> the score its append wrote
# kombu's own methods, for the tests that compare what each writes, and to chain to.
UPSTREAM_APPEND = kombu_redis.QoS.append
UPSTREAM_ACK = kombu_redis.QoS.ack
UPSTREAM_REJECT = kombu_redis.QoS.reject
UPSTREAM_RESTORE_VISIBLE = kombu_redis.QoS.restore_visible
UPSTREAM_RESTORE_UNACKED_ONCE = kombu_redis.QoS.restore_unacked_once

log = logging.getLogger(__name__)


class PendingAcks:
    """The acks of one worker process not yet written, by the unacked keys they clear.

    Process-wide rather than per channel: after a connection loss the old channel's
    acks are written through the new one.
    """

    def __init__(self) -> None:
        self.by_keys: dict[tuple[str, str], list[Any]] = {}
        self.schedule = DeferredFlush(ACK_FLUSH_DELAY, ACK_FLUSH_STALE)

    def hold(self, keys: tuple[str, str], args: Sequence[Any]) -> None:
        """Hold acks (the ACK script's tag and score pairs) for the next flush."""
        self.by_keys.setdefault(keys, []).extend(args)

    def take(self) -> dict[tuple[str, str], list[Any]]:
        """Every held ack, now no longer held."""
        taken, self.by_keys = self.by_keys, {}
        return taken


PENDING = PendingAcks()


class FetchedDelivery:
    """The delivery background.pop_and_record's script has just recorded, while kombu
    hands it to its consumer: append then keeps that record instead of writing one."""

    def __init__(self) -> None:
        self._tag: str | None = None
        self._score = 0.0

    @contextmanager
    def recorded(self, delivery_tag: str, score: float) -> Iterator[None]:
        """While delivering `delivery_tag`, whose record holds `score`."""
        self._tag, self._score = delivery_tag, score
        try:
            yield
        finally:
            self._tag = None

    def take(self, delivery_tag: str) -> float | None:
        """The score of `delivery_tag`'s record if the fetch wrote it (once), else None."""
        if delivery_tag != self._tag:
            return None
        self._tag = None
        return self._score


FETCHED = FetchedDelivery()


def _keys(qos: Any) -> tuple[str, str]:
    return qos.unacked_index_key, qos.unacked_key


def _call(qos: Any, body: str, keys: tuple[str, str], args: list[Any]) -> None:
    """Run `body` on `keys`; its Script is registered once per channel."""
    scripts: dict[str, Any] = qos.__dict__.setdefault(_SCRIPTS, {})
    with qos.channel.conn_or_acquire() as client:
        script = scripts.get(body)
        if script is None:
            script = scripts[body] = client.register_script(body)
        script(keys=list(keys), args=args, client=client)


def _prefixed(qos: Any) -> bool:
    """Whether `qos`'s channel has a global key prefix: kombu prefixes only the first key
    of an EVALSHA, so such a channel keeps kombu's own pipelines."""
    return bool(qos.channel.global_keyprefix)


def append(qos: Any, message: Any, delivery_tag: str) -> None:
    """Record a delivered message as unacked, with kombu's keys and payload."""
    if _prefixed(qos):
        UPSTREAM_APPEND(qos, message, delivery_tag)
        return
    score = FETCHED.take(delivery_tag)
    if score is None:
        delivery = message.delivery_info
        payload = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        score = time()
        _call(qos, APPEND, _keys(qos), [score, delivery_tag, payload])
    qos.__dict__.setdefault(_SCORES, {})[delivery_tag] = score
    virtual.QoS.append(qos, message, delivery_tag)


def _event_loop() -> Any:
    """The worker's event loop, where acks may wait for a batch; None where they may not
    (no loop, or an ack from a thread pool's worker thread, which must not touch it)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return get_event_loop()


def ack(qos: Any, delivery_tag: str) -> None:
    """Forget an acknowledged message; its record goes with the next batch, or now."""
    if _prefixed(qos):
        UPSTREAM_ACK(qos, delivery_tag)
        return
    score = qos.__dict__.get(_SCORES, {}).pop(delivery_tag, "")
    hub = _event_loop()
    if hub is None:
        _call(qos, ACK, _keys(qos), [delivery_tag, score])
    else:
        PENDING.hold(_keys(qos), (delivery_tag, score))
        PENDING.schedule.request(hub, flush, qos)
    virtual.QoS.ack(qos, delivery_tag)


def reject(qos: Any, delivery_tag: str, requeue: bool = False) -> Any:
    """kombu's reject (its record goes at once), forgetting the delivery's score."""
    qos.__dict__.get(_SCORES, {}).pop(delivery_tag, None)
    return UPSTREAM_REJECT(qos, delivery_tag, requeue)


def flush(qos: Any) -> None:
    """Write every held ack through `qos`'s channel; a failed write keeps its acks."""
    for keys, args in PENDING.take().items():
        try:
            _call(qos, ACK, keys, args)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the acks are kept
            PENDING.hold(keys, args)
            log.warning("%d acknowledgements not written yet, kept for the next flush: %r",
                        len(args) // 2, exc)  # fmt: skip


def restore_visible(qos: Any, *args: Any, **kwargs: Any) -> Any:
    """Write held acks (a flush that failed is retried here), then kombu's restore."""
    flush(qos)
    return UPSTREAM_RESTORE_VISIBLE(qos, *args, **kwargs)


def restore_unacked_once(qos: Any, stderr: Any = None) -> Any:
    """Write held acks before a closing channel restores its unacknowledged messages."""
    flush(qos)
    return UPSTREAM_RESTORE_UNACKED_ONCE(qos, stderr)


def install() -> None:
    """Patch kombu's Redis QoS once (idempotent)."""
    qos = kombu_redis.QoS
    qos.append = append
    qos.ack = ack
    qos.reject = reject
    qos.restore_visible = restore_visible
    qos.restore_unacked_once = restore_unacked_once
