"""T0: TaskMessages.build (templates) writes byte for byte what build_direct writes.

build_direct is the long way, per call: Celery's as_task_v2 with saferepr of the
arguments, kombu's serializer, base64 and envelope, the task-sent Event. build fills
templates made once per task from that same output. With the per-call values pinned
(delivery tags, clock, time, utcoffset), both must give identical Redis commands, for
the API's inputs and for inputs that need saferepr's own formatting or truncation.
"""

import functools
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.events.event import Event
from celery.utils.saferepr import saferepr
from kombu.exceptions import EncodeError

from celery_harder import publish
from celery_harder.publish import TaskMessages, fast_repr
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client

ARGS: list[list[Any]] = [
    [],
    [1, 2],
    [-(2**62), 2**62, 0],
    [2**70, 1],  # beyond fast_repr's bound: saferepr
    [1.5, -0.0, 1e300, 3.141592653589793],
    [math.inf],
    [True, False],
    [None],
    ["it's", 'say "hi"', "naïve ✓", "line\nbreak"],
    [[1, [2, [3, [4, [5]]]]]],  # past task_repr_maxlevels
    [{"a": 1, "b": [1, 2]}],
    list(range(400)),  # the repr passes argsrepr_maxsize: truncated
    ["x" * 2000],
]
KWARGS: list[dict[str, Any] | None] = [
    None,
    {},
    {"data": "hello"},
    {"seconds": 1.5},
    {"data": {"nested": ["it's", 1, None]}},
    {"data": "y" * 3000},
]


@pytest.fixture(scope="module")
def messages() -> Iterator[TaskMessages]:
    client = create_task_client(Settings(queues=("celery", "cpu")))
    assert client.messages is not None
    yield client.messages
    client.app.close()


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, messages: TaskMessages) -> None:
    """Every value that changes from call to call, fixed."""
    tag = uuid.UUID("12345678-1234-5678-1234-567812345678")
    monkeypatch.setattr(publish.uuid, "uuid4", lambda: tag)
    monkeypatch.setattr(publish.time, "time", lambda: 1764590000.123456)
    monkeypatch.setattr(
        publish, "Event", functools.partial(Event, __now__=lambda: 1764590000.123456)
    )
    monkeypatch.setattr(publish, "utcoffset", lambda: -3)
    monkeypatch.setattr(messages.events.clock, "forward", lambda: 4711)


@pytest.mark.usefixtures("pinned")
@pytest.mark.parametrize(("args", "kwargs"), list(itertools.product(ARGS, KWARGS)))
def test_build_equals_build_direct(
    messages: TaskMessages, args: list[Any], kwargs: dict[str, Any] | None
) -> None:
    task_id = str(uuid.uuid4())
    fast = messages.build("add", args, kwargs, queue="celery", task_id=task_id)
    slow = messages.build_direct("add", args, kwargs, queue="celery", task_id=task_id)
    assert fast == slow


@pytest.mark.usefixtures("pinned")
@pytest.mark.parametrize("priority", [None, 0, 3, 5, 9, 12])
@pytest.mark.parametrize("queue", ["celery", "cpu"])
@pytest.mark.parametrize(("time_limit", "soft_time_limit"), [(None, None), (30, 20), (1.5, None)])
def test_options_equal_build_direct(
    messages: TaskMessages,
    priority: int | None,
    queue: str,
    time_limit: float | None,
    soft_time_limit: float | None,
) -> None:
    options: dict[str, Any] = {
        "queue": queue,
        "priority": priority,
        "time_limit": time_limit,
        "soft_time_limit": soft_time_limit,
        "task_id": 'an id with "quotes" and ünïcode',
    }
    fast = messages.build("request_info", (), {"data": "x"}, **options)
    slow = messages.build_direct("request_info", (), {"data": "x"}, **options)
    assert fast == slow


def test_templates_are_kept_per_task(messages: TaskMessages) -> None:
    first = messages.templates("add", "celery", None, None, None)
    assert messages.templates("add", "celery", None, None, None) is first
    assert messages.templates("add", "cpu", None, None, None) is not first


def test_unencodable_arguments_raise_kombus_error(messages: TaskMessages) -> None:
    with pytest.raises(EncodeError):
        messages.build("add", [object()], queue="celery")
    with pytest.raises(EncodeError):
        messages.build_direct("add", [object()], queue="celery")


def test_fast_repr_is_saferepr_where_it_answers() -> None:
    rng = random.Random(12)
    values: list[Any] = [[], {}, {"a": 1}, [1, "a"], [True], (1, 2), [1.0, 2**63, -(2**63) + 1]]
    for _ in range(3000):
        n = rng.choice([0, 1, 2, 5, 50, 100, 120, 200])
        values.append(
            [
                rng.choice(
                    [
                        rng.randint(-(2**64), 2**64),
                        rng.randint(-9, 9),
                        rng.uniform(-1e6, 1e6),
                        rng.random() * 10 ** rng.randint(-30, 30),
                    ]
                )
                for _ in range(n)
            ]
        )
    answered = 0
    for value in values:
        for maxsize in (1024, 64):
            fast = fast_repr(value, maxsize)
            if fast is not None:
                answered += 1
                assert fast == saferepr(value, maxsize, maxlevels=3), value
    assert answered > 1000
