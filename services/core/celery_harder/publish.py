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
messages cannot drift apart; tests/stack/test_fast_submit.py compares them, field by
field, with what `app.send_task` writes.

`build` fills templates made once per task from `build_direct`'s output (as_task_v2
with sentinels in the per-call places) instead of running as_task_v2, saferepr and
two JSON encodings of the whole message per call; tests/unit/test_publish_templates.py
checks that both write the same bytes.
"""

import base64
import os
import re
import secrets
import time
import uuid
from bisect import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.events.event import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset
from kombu.entity import maybe_delivery_mode
from kombu.exceptions import EncodeError
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


# Templates kept per (task, queue, priority, time limits, origin, reply_to): a handful in
# practice (the catalog's tasks on the configured queues); past this, none are added.
MAX_TEMPLATES = 1024
# The places a call's own values go in the message, its body and its task-sent event.
SLOTS: tuple[str, ...] = ("id", "argsrepr", "kwargsrepr", "args", "kwargs", "body", "tag")
SLOTS += ("utcoffset", "clock", "timestamp")
_INT_BOUND = 1 << 63


def fast_repr(value: Any, maxsize: int) -> str | None:
    """saferepr(value, maxsize) for a list of plain ints/floats or an empty dict, else None.

    Celery's saferepr writes numbers with str() and containers like repr() does, and
    truncates only past `maxsize` characters; for these inputs the result is repr()'s.
    Anything else (strings, nested values, bools, subclasses) returns None: use saferepr.
    """
    if type(value) is dict:
        return "{}" if not value else None
    if type(value) is not list or not value:
        return None
    for item in value:
        kind = type(item)
        if kind is float:
            continue
        if kind is not int or not -_INT_BOUND < item < _INT_BOUND:
            return None
    text = repr(value)
    return text if len(text) < maxsize else None


class Template:
    """A JSON document with some values left open: the encoder's output split at them.

    Built by encoding the document with a unique string (a sentinel) in each open place;
    filling a place with the JSON encoding of a value gives exactly the bytes the
    encoder would write for the document holding that value, because a JSON encoder
    writes a container as the concatenation of its members' encodings.
    """

    def __init__(self, text: str, slots: Mapping[str, str]) -> None:
        encoded = {_JSON.encode(sentinel): name for name, sentinel in slots.items()}
        pattern = re.compile("|".join(re.escape(e) for e in encoded))
        parts: list[str] = []
        names: list[str] = []
        pos = 0
        for match in pattern.finditer(text):
            parts.append(text[pos : match.start()])
            names.append(encoded[match.group()])
            pos = match.end()
        parts.append(text[pos:])
        self.head = parts[0]
        self.rest = tuple(zip(names, parts[1:], strict=True))
        self.names = frozenset(names)

    def fill(self, values: Mapping[str, str]) -> str:
        """The document with each open place holding its (already JSON-encoded) value."""
        out = [self.head]
        for name, part in self.rest:
            out.append(values[name])
            out.append(part)
        return "".join(out)


def _sentinel(name: str) -> str:
    return f"celery-harder-slot-{name}-{secrets.token_hex(16)}"


def _quoted(text: str) -> str:
    """The JSON string of a uuid or a base64 text (nothing in them needs escaping)."""
    return f'"{text}"'


def _b64(text: str) -> str:
    """kombu's Base64 body encoding of a utf-8 text, as a JSON string."""
    return '"' + base64.b64encode(text.encode("utf-8")).decode("ascii") + '"'


def _encode(value: Any) -> str:
    """kombu's JSON encoding of a value (its serializer raises EncodeError on failure)."""
    try:
        encoded: str = _JSON.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(exc) from exc
    return encoded


@dataclass(frozen=True)
class TaskTemplates:
    """One task's message and task-sent event, built once, with the per-call values open."""

    body: Template  # the task body (args, kwargs, embed), before base64
    message: Template  # the message envelope, holding the base64 body
    event: Template | None  # the task-sent event's fields, before base64
    event_message: Template | None  # its envelope


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
        self.repr_maxlevels: int = conf.task_repr_maxlevels  # read once, as the rest of conf
        # A dispatcher of our own for the event fields; enabled=False never connects.
        self.events = app.events.Dispatcher(enabled=False)
        self.event_channel = self._event_channel(str(conf.broker_url), options)
        self._origin: tuple[int, str] = (os.getpid(), str(anon_nodename()))
        self._templates: dict[tuple[Any, ...], TaskTemplates] = {}

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
        if (content_type, content_encoding) != ("application/json", "utf-8"):
            raise Unsupported(f"kombu's json serializer wrote {content_type}/{content_encoding}")
        return TaskMessages.raw_envelope(
            _BASE64.encode(payload),
            headers,
            properties,
            exchange,
            routing_key,
            priority,
            str(uuid.uuid4()),
        )

    @staticmethod
    def raw_envelope(
        encoded_body: str,
        headers: Mapping[str, Any],
        properties: Mapping[str, Any],
        exchange: str,
        routing_key: str,
        priority: int | None,
        delivery_tag: str,
    ) -> str:
        """The envelope around a body already serialized (JSON, utf-8) and base64-encoded."""
        message = {
            "body": encoded_body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": dict(headers),
            "properties": {
                **properties,
                "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                "priority": priority or 0,
                "body_encoding": "base64",
                "delivery_tag": delivery_tag,
            },
        }
        encoded: str = _JSON.encode(message)
        return encoded

    def build_direct(
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
        """`build`'s commands made the long way: as_task_v2, the envelope, the event, per call.

        What `build` must equal byte for byte (tests/unit/test_publish_templates.py).
        """
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
        """The commands that send `name(*args, **kwargs)` to `queue`, as send_task would.

        The message and event are the templates of `build_direct`'s output for this task,
        filled with the call's id, arguments, their reprs, delivery tags, clock and time.
        """
        task_id = task_id or str(uuid.uuid4())
        templates = self.templates(name, queue, priority, time_limit, soft_time_limit)
        args = list(args)
        kwargs = dict(kwargs or {})
        amqp = self.app.amqp
        maxlevels = self.repr_maxlevels
        argsrepr = fast_repr(args, amqp.argsrepr_maxsize)
        if argsrepr is None:  # as_task_v2 shows no arguments as ()
            argsrepr = saferepr(args or (), amqp.argsrepr_maxsize, maxlevels=maxlevels)
        kwargsrepr = fast_repr(kwargs, amqp.kwargsrepr_maxsize)
        if kwargsrepr is None:
            kwargsrepr = saferepr(kwargs, amqp.kwargsrepr_maxsize, maxlevels=maxlevels)
        encoded_id = _encode(task_id)
        encoded_argsrepr = _encode(argsrepr)
        encoded_kwargsrepr = _encode(kwargsrepr)
        body = templates.body.fill({"args": _encode(args), "kwargs": _encode(kwargs)})
        message = templates.message.fill(
            {
                "id": encoded_id,
                "argsrepr": encoded_argsrepr,
                "kwargsrepr": encoded_kwargsrepr,
                "body": _b64(body),
                "tag": _quoted(str(uuid.uuid4())),
            }
        )
        broker: list[Command] = [("LPUSH", self.queue_key(queue, priority or 0), message)]
        if templates.event is not None and templates.event_message is not None:
            event = templates.event.fill(
                {
                    "id": encoded_id,
                    "argsrepr": encoded_argsrepr,
                    "kwargsrepr": encoded_kwargsrepr,
                    "utcoffset": _encode(utcoffset()),
                    "clock": _encode(self.events.clock.forward()),
                    "timestamp": _encode(time.time()),
                }
            )
            sent = templates.event_message.fill(
                {"body": _b64(event), "tag": _quoted(str(uuid.uuid4()))}
            )
            broker.append(("PUBLISH", self.event_channel, sent))
        mark = ("SET", keys.ISSUED + task_id, 1, "EX", self.result_expires)
        return Outgoing(task_id, queue, tuple(broker), (mark,))

    def templates(
        self,
        name: str,
        queue: str,
        priority: int | None,
        time_limit: float | None,
        soft_time_limit: float | None,
    ) -> TaskTemplates:
        """This task's templates, made on first use (per origin and reply_to too)."""
        reply_to = self.app.thread_oid
        key = (name, queue, priority, time_limit, soft_time_limit, self.origin, reply_to)
        found = self._templates.get(key)
        if found is None:
            found = self._make_templates(name, queue, priority, time_limit, soft_time_limit)
            if len(self._templates) < MAX_TEMPLATES:
                self._templates[key] = found
        return found

    def _make_templates(
        self,
        name: str,
        queue: str,
        priority: int | None,
        time_limit: float | None,
        soft_time_limit: float | None,
    ) -> TaskTemplates:
        """`build_direct`'s steps with a sentinel wherever a call's own value goes."""
        slot = {name: _sentinel(name) for name in SLOTS}
        headers, properties, body, sent_event = self.app.amqp.as_task_v2(
            slot["id"],
            name,
            [],
            {},
            reply_to=self.app.thread_oid,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            create_sent_event=self.sent_events,
            origin=self.origin,
            ignore_result=None,
            argsrepr=slot["argsrepr"],
            kwargsrepr=slot["kwargsrepr"],
        )
        args, kwargs, embed = body
        if args or kwargs:
            raise Unsupported("as_task_v2 changed the task's arguments")
        body_text = _JSON.encode((slot["args"], slot["kwargs"], embed))
        body_template = Template(body_text, slot)
        properties = {**properties, "delivery_mode": self.delivery_mode}
        message = self.raw_envelope(
            slot["body"], headers, properties, "", queue, priority, slot["tag"]
        )
        message_template = Template(message, slot)
        expected = {"id", "argsrepr", "kwargsrepr", "body", "tag"}
        if body_template.names != {"args", "kwargs"} or message_template.names != expected:
            raise Unsupported("as_task_v2 puts the call's values in unexpected places")
        if sent_event is None:
            return TaskTemplates(body_template, message_template, None, None)
        evd = self.events
        event = Event(
            SENT_EVENT,
            hostname=evd.hostname,
            utcoffset=slot["utcoffset"],
            pid=evd.pid,
            clock=slot["clock"],
            **{**sent_event, "queue": queue, "exchange": "", "routing_key": queue},
        )
        event["timestamp"] = slot["timestamp"]  # in the place Event put the time
        event_template = Template(_JSON.encode(event), slot)
        event_properties = {"delivery_mode": maybe_delivery_mode(evd.delivery_mode)}
        event_message = self.raw_envelope(
            slot["body"],
            evd.headers,
            event_properties,
            evd.exchange.name,
            SENT_EVENT.replace("-", "."),
            None,
            slot["tag"],
        )
        event_message_template = Template(event_message, slot)
        event_names = {"id", "argsrepr", "kwargsrepr", "utcoffset", "clock", "timestamp"}
        if event_template.names != event_names or event_message_template.names != {"body", "tag"}:
            raise Unsupported("the task-sent event holds the call's values in unexpected places")
        return TaskTemplates(
            body_template, message_template, event_template, event_message_template
        )

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
