"""Celery task messages for kombu's Redis transport, built once for every sender.

`app.send_task` goes through kombu's producer: a connection from the pool, a
result-waiter subscription per task, a queue declaration check, the virtual
exchange machinery, and one socket write per Redis command. `TaskMessages` builds
the same bytes kombu would write (Celery's own `app.amqp.as_task_v2` for the task
message, kombu's serializer, body encoding and message envelope for the rest) and
says which Redis commands carry them, so that a sender can put the issued-id mark,
the message and its task-sent event into one MULTI/EXEC round trip.

It covers what celery-harder sends: a catalog task by name to a direct queue (the
anonymous exchange, routing key = queue), with a priority and time limits. Anything
else (countdown, ETA, expires, links, task routes, another serializer) is refused
with `Unsupported`, and the caller uses `app.send_task` instead. The sync
`TaskClient` and the API's `AsyncTaskClient` both send what this builds, so their
messages cannot drift apart; tests/unit/test_publish.py compares them, field by
field, with what `app.send_task` writes.
"""

import os
import uuid
from bisect import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.events.event import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.time import utcoffset
from kombu.entity import maybe_delivery_mode
from kombu.serialization import dumps as serialize
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual.base import Base64
from kombu.utils.json import JSONEncoder

from celery_harder import keys

# kombu's Redis channel clamps a message's priority into this range before it picks
# the sub-list (virtual Channel.min_priority / max_priority).
MIN_PRIORITY, MAX_PRIORITY = 0, 9
SENT_EVENT = "task-sent"
Command = tuple[Any, ...]
_BASE64 = Base64()
# kombu.utils.json.dumps builds a JSONEncoder per call; one, with the same (default)
# options, encodes the same bytes.
_JSON = JSONEncoder()


class Unsupported(ValueError):
    """A configuration or a call the direct publisher does not reproduce exactly."""


@dataclass(frozen=True)
class Outgoing:
    """One task, ready to send: the Redis commands for the broker and for the results."""

    task_id: str
    queue: str
    broker: tuple[Command, ...]  # LPUSH of the message, PUBLISH of its task-sent event
    results: tuple[Command, ...]  # SET of the issued-id mark, with its TTL


def redis_db(url: str) -> int:
    """The database number a Redis URL selects (0 when it names none)."""
    return int(redis.connection.parse_url(url).get("db", 0) or 0)  # type: ignore[no-untyped-call]


def unsupported_configuration(app: Celery) -> str | None:
    """Why `app` sends messages this module would not reproduce exactly, or None."""
    conf = app.conf
    options = conf.broker_transport_options or {}
    checks = {
        "task_protocol is not 2": conf.task_protocol != 2,
        "task_serializer is not json": conf.task_serializer != "json",
        "task_compression is set": bool(conf.task_compression),
        "task_routes are set": bool(conf.task_routes),
        "task_queues are set": bool(conf.task_queues),
        "task_default_priority is set": conf.task_default_priority is not None,
        "task_default_exchange_type is not direct": conf.task_default_exchange_type != "direct",
        "the broker is not Redis": not str(conf.broker_url or "").startswith(("redis", "rediss")),
        "broker_transport_options sets global_keyprefix": bool(options.get("global_keyprefix")),
        "event_serializer is not json": conf.event_serializer != "json",
    }
    reasons = [reason for reason, failed in checks.items() if failed]
    return "; ".join(reasons) or None


class TaskMessages:
    """Builds `app.send_task`'s Redis commands for a task, without a kombu producer."""

    def __init__(self, app: Celery, result_expires: int) -> None:
        reason = unsupported_configuration(app)
        if reason:
            raise Unsupported(reason)
        self.app = app
        self.result_expires = result_expires
        conf = app.conf
        options = conf.broker_transport_options or {}
        channel = kombu_redis.Channel
        self.sep: str = str(options.get("sep", channel.sep))
        self.priority_steps: list[int] = list(options.get("priority_steps", channel.priority_steps))
        # send_task_message: the queue's exchange has no delivery mode, so the default's.
        self.delivery_mode = maybe_delivery_mode(conf.task_default_delivery_mode)
        self.sent_events = bool(conf.task_send_sent_event)
        # A dispatcher of our own for the event fields; enabled=False never connects.
        self.events = app.events.Dispatcher(enabled=False)
        self.event_channel = self._event_channel(str(conf.broker_url), options)
        self._origin: tuple[int, str] = (os.getpid(), str(anon_nodename()))

    @property
    def origin(self) -> str:
        """as_task_v2's default `origin` header (anon_nodename), computed once per process."""
        pid, name = self._origin
        if pid != os.getpid():
            self._origin = pid, name = os.getpid(), str(anon_nodename())
        return name

    def _event_channel(self, broker_url: str, options: Mapping[str, Any]) -> str:
        """kombu's PUBLISH channel for task-sent (Channel._get_publish_topic)."""
        prefix = options.get("fanout_prefix", kombu_redis.Channel.fanout_prefix)
        if prefix is True:
            keyprefix = kombu_redis.Channel.keyprefix_fanout.format(db=redis_db(broker_url))
        else:
            keyprefix = prefix or ""
        patterns = options.get("fanout_patterns", kombu_redis.Channel.fanout_patterns)
        routing_key = SENT_EVENT.replace("-", ".")
        exchange = self.events.exchange.name
        return f"{keyprefix}{exchange}/{routing_key}" if patterns else f"{keyprefix}{exchange}"

    def queue_key(self, queue: str, priority: int) -> str:
        """The list kombu's Redis channel pushes a message of `priority` onto (`_q_for_pri`)."""
        clamped = max(min(int(priority), MAX_PRIORITY), MIN_PRIORITY)
        step = self.priority_steps[bisect(self.priority_steps, clamped) - 1]
        return f"{queue}{self.sep}{step}" if step else queue

    @staticmethod
    def envelope(
        body: Any,
        headers: Mapping[str, Any],
        properties: Mapping[str, Any],
        exchange: str,
        routing_key: str,
        priority: int | None = None,
    ) -> str:
        """kombu's message as the Redis channel stores it (Producer.publish, prepare_message,
        _inplace_augment_message), JSON-encoded as `Channel._put` writes it."""
        content_type, content_encoding, payload = serialize(body, serializer="json")
        message = {
            "body": _BASE64.encode(payload),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": dict(headers),
            "properties": {
                **properties,
                "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                "priority": priority or 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        encoded: str = _JSON.encode(message)
        return encoded

    def build(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str,
        task_id: str | None = None,
        priority: int | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Outgoing:
        """The commands that send `name(*args, **kwargs)` to `queue`, as send_task would."""
        task_id = task_id or str(uuid.uuid4())
        headers, properties, body, sent_event = self.app.amqp.as_task_v2(
            task_id,
            name,
            list(args),
            dict(kwargs or {}),
            reply_to=self.app.thread_oid,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            create_sent_event=self.sent_events,
            origin=self.origin,
            ignore_result=None,  # send_task's value when the caller gives none
        )
        properties = {**properties, "delivery_mode": self.delivery_mode}
        message = self.envelope(body, headers, properties, "", queue, priority)
        broker: list[Command] = [("LPUSH", self.queue_key(queue, priority or 0), message)]
        if sent_event is not None:
            broker.append(("PUBLISH", self.event_channel, self.sent_event(sent_event, queue)))
        mark = ("SET", keys.ISSUED + task_id, 1, "EX", self.result_expires)
        return Outgoing(task_id, queue, tuple(broker), (mark,))

    def sent_event(self, fields: dict[str, Any], queue: str) -> str:
        """The task-sent event as EventDispatcher.publish sends it on the celeryev fanout."""
        evd = self.events
        event = Event(
            SENT_EVENT,
            hostname=evd.hostname,
            utcoffset=utcoffset(),
            pid=evd.pid,
            clock=evd.clock.forward(),
            **{**fields, "queue": queue, "exchange": "", "routing_key": queue},
        )
        properties = {"delivery_mode": maybe_delivery_mode(evd.delivery_mode)}
        return self.envelope(
            event, evd.headers, properties, evd.exchange.name, SENT_EVENT.replace("-", ".")
        )


def transaction(commands: Sequence[Command]) -> list[Command]:
    """`commands` between MULTI and EXEC."""
    return [("MULTI",), *commands, ("EXEC",)]


def exec_replies(replies: Sequence[Any]) -> list[Any]:
    """EXEC's replies; raises the first error a command inside the transaction answered."""
    results = list(replies[-1] or [])
    for reply in results:
        if isinstance(reply, Exception):
            raise reply
    return results
