"""T0: cancelled timer entries leave kombu's heap (a real Timer and Hub), not at their due time."""

import time
from types import SimpleNamespace
from typing import Any

from kombu.asynchronous import Hub
from kombu.asynchronous.timer import Timer

from background.celery import celery_app
from background.timer_purge import PURGE_INTERVAL, TimerPurgeStep, purge_cancelled


def due_entries(timer: Timer) -> list[Any]:
    """Every entry the timer would fire now, in its order."""
    fired = []
    for _, entry in timer:
        if entry is None:
            return fired
        fired.append(entry.args[0])
    raise AssertionError("the timer's iterator ended")  # it never does


def test_purge_drops_cancelled_entries_and_keeps_the_order_of_the_rest() -> None:
    timer = Timer()
    now = time.monotonic()
    # Due in the past, in a scrambled order: the survivors must still fire by due time.
    trefs = {i: timer.enter_at(timer.Entry(lambda i: i, (i,)), now - 1 - (i * 7 % 10) / 10)
             for i in range(10)}  # fmt: skip
    for i in (1, 2, 4, 6, 8, 9):
        trefs[i].cancel()
    assert purge_cancelled(timer._queue) == 6
    assert len(timer) == 4
    expected = sorted((0, 3, 5, 7), key=lambda i: now - 1 - (i * 7 % 10) / 10)
    assert due_entries(timer) == expected
    assert purge_cancelled(timer._queue) == 0


def test_a_pool_time_limit_timer_no_longer_outlives_its_task() -> None:
    """What AsynPool does per task: call_later(limit) on the hub, cancelled when it ends."""
    timer = Timer()
    hub = Hub(timer)
    step = TimerPurgeStep(SimpleNamespace())
    step.start(SimpleNamespace(hub=hub))
    for _ in range(1000):  # 1,000 finished tasks, each with a soft and a hard limit timer
        hub.call_later(270, lambda: None).cancel()
        hub.call_later(300, lambda: None).cancel()
    live = hub.call_later(300, lambda: None)  # a task still running keeps its timer
    assert len(timer) == 2002
    step.tref()  # the purge timer's run, as the event loop fires it every PURGE_INTERVAL
    queued = [item.entry for item in timer._queue]
    assert live in queued and not [e for e in queued if e.canceled]
    assert len(queued) <= 3  # the live timer and the purge timer (it reschedules itself)
    step.stop(SimpleNamespace(hub=hub))
    assert step.tref is None and PURGE_INTERVAL <= 10


def test_no_event_loop_no_purge_timer() -> None:
    step = TimerPurgeStep(SimpleNamespace())
    step.start(SimpleNamespace(hub=None))  # the solo and thread pools
    assert step.tref is None


def test_the_worker_app_runs_the_purge_step() -> None:
    assert TimerPurgeStep in celery_app.steps["consumer"]
