"""T0: the follower reads a workflow at once when every followed leaf has published its end."""

import asyncio
import json
import time

from celery_harder_operator import follow
from celery_harder_operator.follow import Follower, is_final_state

WID = "wf-1"
A, B = b"celery-task-meta-a", b"celery-task-meta-b"


def meta(status: str) -> bytes:
    return json.dumps({"status": status, "result": None, "task_id": "x"}).encode()


def test_only_ready_states_are_a_leaf_s_last_word() -> None:
    assert all(is_final_state(meta(s)) for s in ("SUCCESS", "FAILURE", "REVOKED"))
    assert not any(is_final_state(meta(s)) for s in ("STARTED", "PROGRESS", "RETRY", "PENDING"))
    assert not is_final_state(b"not json") and not is_final_state(None)
    assert not is_final_state(b"[1, 2]")


def test_settled_once_every_followed_leaf_has_ended() -> None:
    follower = Follower()  # not connected: follow() records, subscribes nothing
    assert asyncio.run(follower.follow(WID, [A, B]))
    assert follower.heard(A, meta("STARTED")) == WID and not follower.take_settled(WID)
    assert follower.heard(A, meta("SUCCESS")) == WID and not follower.take_settled(WID)
    assert follower.heard(B, meta("PROGRESS")) == WID and not follower.take_settled(WID)
    assert follower.heard(B, meta("FAILURE")) == WID
    assert follower.take_settled(WID) and not follower.take_settled(WID)  # taken once
    assert follower.heard(b"celery-task-meta-other", meta("SUCCESS")) is None


def test_a_read_resets_what_is_still_to_be_heard() -> None:
    follower = Follower()
    asyncio.run(follower.follow(WID, [A, B]))
    follower.heard(A, meta("SUCCESS"))
    # The next read says B is still running (A's end was heard), and a chain's next leaf
    # C appears: both must be heard before the workflow counts as settled.
    c = b"celery-task-meta-c"
    asyncio.run(follower.follow(WID, [B, c]))
    follower.heard(B, meta("SUCCESS"))
    assert not follower.take_settled(WID)
    follower.heard(c, meta("SUCCESS"))
    assert follower.take_settled(WID)
    asyncio.run(follower.forget(WID))
    assert follower.heard(c, meta("SUCCESS")) is None and not follower.take_settled(WID)


class Stopped:
    """kopf's DaemonStopped as before_read uses it: falsy, and a wait that times out."""

    def __bool__(self) -> bool:
        return False

    async def wait(self, timeout: float | None = None) -> None:
        await asyncio.sleep(timeout or 0)


def time_before_read(settled: bool, monkeypatch) -> float:
    """How long the timer's next run waits when a message woke it 10 s into the run."""
    follower, state = Follower(), follow.SyncState()
    monkeypatch.setattr(follow, "FOLLOWER", follower)
    monkeypatch.setattr(follow, "STATE", state)

    async def run() -> float:
        now = asyncio.get_running_loop().time()
        state.first_read[WID] = now - 10  # a 10 s old run: its gap is MAX_GAP
        state.last_read[WID] = now
        await follower.follow(WID, [A])
        follower.heard(A, meta("SUCCESS" if settled else "PROGRESS"))
        follower.wake(WID)  # what the reader does on a message
        started = time.monotonic()
        assert await follow.before_read(WID, 60.0, Stopped())
        return time.monotonic() - started

    return asyncio.run(run())


def test_the_last_leaf_s_end_skips_the_gap(monkeypatch) -> None:
    assert follow.MAX_GAP >= 0.5
    assert time_before_read(False, monkeypatch) >= follow.MAX_GAP * 0.9  # progress: the gap
    assert time_before_read(True, monkeypatch) < follow.MAX_GAP / 2  # the end: at once


def time_to_settle(heard: list[tuple[bytes, str]], grace: float, monkeypatch) -> float:
    """How long the create handler's wait lasts when these messages arrive during it."""
    follower, state = Follower(), follow.SyncState()
    monkeypatch.setattr(follow, "FOLLOWER", follower)
    monkeypatch.setattr(follow, "STATE", state)

    async def publish() -> None:
        for channel, status in heard:
            await asyncio.sleep(0)  # let settle() start waiting first
            if follower.heard(channel, meta(status)) is not None:
                follower.wake(WID)  # what the reader does on a message

    async def run() -> float:
        started = time.monotonic()
        await follow.listen(WID, [A, B])
        await asyncio.gather(follow.settle(WID, grace), publish())
        assert WID in state.last_read and WID in state.first_read  # the timer's first read
        return time.monotonic() - started

    return asyncio.run(run())


def test_a_new_workflow_whose_leaves_end_is_read_at_once(monkeypatch) -> None:
    ended = [(A, "STARTED"), (A, "SUCCESS"), (B, "SUCCESS")]
    assert time_to_settle(ended, 5.0, monkeypatch) < 1.0
    # One leaf still running: the wait runs its whole grace, then the read goes ahead.
    assert 0.3 <= time_to_settle([(A, "SUCCESS"), (B, "STARTED")], 0.3, monkeypatch) < 1.0


def test_a_leaf_that_ends_before_the_wait_begins_is_heard(monkeypatch) -> None:
    """The handler listens before it sends: a leaf's end between the send and the wait counts."""
    follower, state = Follower(), follow.SyncState()
    monkeypatch.setattr(follow, "FOLLOWER", follower)
    monkeypatch.setattr(follow, "STATE", state)

    async def run() -> float:
        await follow.listen(WID, [A, B])
        for channel in (A, B):  # both end while the dispatch is still returning
            assert follower.heard(channel, meta("SUCCESS")) == WID
        started = time.monotonic()
        await follow.settle(WID, 5.0)
        return time.monotonic() - started

    assert asyncio.run(run()) < 1.0
