"""A fetch that pops a message and writes its unacked record in one script call.

kombu's Redis transport takes a message with BRPOP and then records it as unacked in a
second round trip (QoS.append, background.unacked's APPEND script). While a queue
drains, that second call was 18% of the worker's main process (py-spy, bench B2), and
between the two a `kill -9` lost the message just taken: it was in neither the queue
nor the unacked hash. POP does both in one call, atomically: it records the oldest
message of the first non-empty queue, in BRPOP's key order (each priority step of each
queue, in the fair cycle's order), with kombu's own keys, score and payload, and then
pops it. The fetch goes through kombu's event loop as BRPOP does (the same socket,
registration and paused-reply handling); a reply held back while the prefetch is full
holds a message that is already recorded, so a worker that dies with it leaves it to
come back after the visibility timeout instead of losing it.

POP does not block. When every queue is empty the next fetch is kombu's own BRPOP,
whose reply (a message or the timeout) turns the script back on. kombu's BRPOP is also
used, unchanged, on a channel with a global key prefix (POP's keys would need it) and
on a channel while a consumer that takes no acks consumes from it (no ack would remove
its record).
"""

import logging
from dataclasses import dataclass, field
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

from background import unacked

# KEYS: the queues' lists in BRPOP's order, then the unacked index and hash.
# ARGV: the delivery time. Returns false, or {list, message, 1 if recorded else 0}.
# The record is written before the pop: a write Redis refuses (a full noeviction
# server) stops the script with the message still in its queue.
POP = """
local index, hash = KEYS[#KEYS - 1], KEYS[#KEYS]
for i = 1, #KEYS - 2 do
  local item = redis.call('LINDEX', KEYS[i], -1)
  if item then
    local ok, message = pcall(cjson.decode, item)
    local properties = ok and type(message) == 'table' and message['properties']
    local tag, delivery
    if type(properties) == 'table' then
      tag, delivery = properties['delivery_tag'], properties['delivery_info']
    end
    local recorded = 0
    if type(tag) == 'string' and type(delivery) == 'table'
        and type(delivery['exchange']) == 'string'
        and type(delivery['routing_key']) == 'string' then
      -- kombu's record: [message, exchange, routing_key]
      redis.call('ZADD', index, ARGV[1], tag)
      redis.call('HSET', hash, tag, '[' .. item .. ',' .. cjson.encode(delivery['exchange'])
        .. ',' .. cjson.encode(delivery['routing_key']) .. ']')
      recorded = 1
    end
    redis.call('RPOP', KEYS[i])
    return {KEYS[i], item, recorded}
  end
end
return false
"""
_STATE = "_celery_harder_fetch"
# kombu's own methods, to chain to and for the tests that compare.
UPSTREAM_BRPOP_START = kombu_redis.Channel._brpop_start
UPSTREAM_BRPOP_READ = kombu_redis.Channel._brpop_read
UPSTREAM_BASIC_CONSUME = kombu_redis.Channel.basic_consume

log = logging.getLogger(__name__)


@dataclass
class FetchState:
    """One channel's fetch: which call is in flight and what the next one is."""

    sha: str | None = None  # POP's digest, once loaded on this channel's Redis
    score: float | None = None  # the delivery time of the POP in flight; None: none is
    block_next: bool = False  # every queue was empty: the next fetch is kombu's BRPOP
    no_ack_tags: set[str] = field(default_factory=set)  # consumers that take no acks


def _state(channel: Any) -> FetchState:
    state: FetchState | None = channel.__dict__.get(_STATE)
    if state is None:
        state = channel.__dict__[_STATE] = FetchState()
    return state


def _uses_pop(channel: Any, state: FetchState) -> bool:
    # A consumer without acks (Celery's start-up sync replies, for one) counts while it
    # consumes: kombu drops a cancelled consumer's tag from channel._consumers.
    no_ack = not state.no_ack_tags.isdisjoint(channel._consumers)
    return not (state.block_next or channel.global_keyprefix or no_ack)


def basic_consume(
    channel: Any, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
) -> Any:
    """kombu's basic_consume, noting a consumer without acks (BRPOP while it consumes)."""
    if no_ack:
        _state(channel).no_ack_tags.add(consumer_tag)
    return UPSTREAM_BASIC_CONSUME(channel, queue, no_ack, callback, consumer_tag, **kwargs)


def brpop_start(channel: Any, timeout: Any = None) -> None:
    """Send POP for the channel's queues, or kombu's BRPOP where POP does not apply."""
    state = _state(channel)
    if not _uses_pop(channel, state):
        state.score = None
        UPSTREAM_BRPOP_START(channel, timeout)
        return
    queues = channel._queue_cycle.consume(len(channel.active_queues))
    if not queues:
        return
    keys = [channel._q_for_pri(queue, pri) for pri in channel.priority_steps for queue in queues]
    client = channel.client
    if state.sha is None:
        state.sha = client.script_load(POP)
    state.score = time()
    channel._in_poll = client.connection
    channel._brpop_sent_at = monotonic()  # kombu's health check times the reply from here
    client.connection.send_command(
        "EVALSHA", state.sha, len(keys) + 2, *keys,
        channel.unacked_index_key, channel.unacked_key, state.score,
    )  # fmt: skip


def brpop_read(channel: Any, **options: Any) -> bool:
    """Read the reply of the fetch in flight and deliver its message, as kombu's does."""
    state = _state(channel)
    score, state.score = state.score, None
    if score is None:  # kombu's BRPOP: a message or its timeout, POP again after either
        state.block_next = False
        return bool(UPSTREAM_BRPOP_READ(channel, **options))
    client = channel.client
    try:
        try:
            reply = client.parse_response(client.connection, "EVALSHA", **options)
        except NoScriptError:  # Redis restarted or flushed its scripts: load POP again
            state.sha = None
            raise Empty() from None
        except channel.connection_errors:
            client.connection.disconnect()  # kombu's: the next poll reconnects
            raise
        except channel.ResponseError as exc:  # nothing was popped: fetch as kombu does
            log.warning("the pop-and-record script failed, BRPOP takes the next: %r", exc)
            state.block_next = True
            raise Empty() from None
        if not reply:
            state.block_next = True
            raise Empty()
        key, item, recorded = reply
        queue = bytes_to_str(key).rsplit(channel.sep, 1)[0]
        channel._queue_cycle.rotate(queue)
        payload = loads(bytes_to_str(item))
        if recorded:
            with unacked.FETCHED.recorded(payload["properties"]["delivery_tag"], score):
                channel.connection._deliver(payload, queue)
        else:  # a message POP could not read: kombu's append records it, if it can
            channel.connection._deliver(payload, queue)
        return True
    finally:
        channel._in_poll = None
        channel._flush_brpop_reauth()


def install() -> None:
    """Patch kombu's Redis channel once (idempotent)."""
    channel = kombu_redis.Channel
    channel._brpop_start = brpop_start
    channel._brpop_read = brpop_read
    channel.basic_consume = basic_consume
