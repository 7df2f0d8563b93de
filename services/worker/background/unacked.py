"""kombu's unacked bookkeeping in one script call per message, instead of a MULTI/EXEC.

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
"""

from time import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

# KEYS: the unacked index (sorted set), the unacked hash. ARGV: time, delivery tag, payload.
APPEND = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
"""
# KEYS: as APPEND's. ARGV: the delivery tag.
ACK = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
"""
_SCRIPTS = "_celery_harder_unacked_scripts"
# kombu's own methods, for the tests that compare what each writes.
UPSTREAM_APPEND = kombu_redis.QoS.append
UPSTREAM_ACK = kombu_redis.QoS.ack


def _call(qos: Any, body: str, args: list[Any]) -> None:
    """Run `body` on kombu's unacked keys; its Script is registered once per channel."""
    scripts: dict[str, Any] = qos.__dict__.setdefault(_SCRIPTS, {})
    with qos.channel.conn_or_acquire() as client:
        script = scripts.get(body)
        if script is None:
            script = scripts[body] = client.register_script(body)
        script(keys=[qos.unacked_index_key, qos.unacked_key], args=args, client=client)


def append(qos: Any, message: Any, delivery_tag: str) -> None:
    """Record a delivered message as unacked, with kombu's keys and payload."""
    delivery = message.delivery_info
    payload = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
    _call(qos, APPEND, [time(), delivery_tag, payload])
    virtual.QoS.append(qos, message, delivery_tag)


def ack(qos: Any, delivery_tag: str) -> None:
    """Forget an acknowledged message's unacked record."""
    _call(qos, ACK, [delivery_tag])
    virtual.QoS.ack(qos, delivery_tag)


def install() -> None:
    """Patch kombu's Redis QoS once (idempotent)."""
    qos = kombu_redis.QoS
    qos.append = append
    qos.ack = ack
