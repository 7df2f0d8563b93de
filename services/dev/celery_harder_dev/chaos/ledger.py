"""Every task a chaos case submits, and what Redis recorded of it: last state, body starts."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from celery_harder.keys import DELIVERIES
from celery_harder.results import READY_STATES, TaskStatus, describe_meta
from celery_harder.task_client import REDIS_ERRORS, BrokerUnavailable, TaskClient
from celery_harder_dev.polling import wait_until

UNREACHABLE = "UNREACHABLE"  # the state recorded while Redis cannot be read


def status_or_none(client: TaskClient, task_id: str) -> TaskStatus | None:
    """A task's status, or None while Redis cannot be reached."""
    try:
        return client.status(task_id)
    except BrokerUnavailable:
        return None


def wait_status(
    client: TaskClient,
    task_id: str,
    check: Callable[[TaskStatus], bool],
    what: str,
    timeout: float = 60,
) -> TaskStatus:
    """Poll one task's status until `check` holds; TimeoutError naming `what` otherwise."""
    found: list[TaskStatus] = []

    def reached() -> bool:
        status = status_or_none(client, task_id)
        if status is None or not check(status):
            return False
        found.append(status)
        return True

    wait_until(reached, timeout, what, interval=0.02)
    return found[-1]


@dataclass
class Ledger:
    """The ids a case submitted, in order, read back in one round trip each."""

    client: TaskClient
    ids: list[str] = field(default_factory=list)

    def submit(self, seconds: float, count: int) -> list[str]:
        """Send `count` sleep(seconds) tasks through the catalog client; their ids."""
        new = [self.client.submit("sleep", [seconds]) for _ in range(count)]
        self.ids.extend(new)
        return new

    def statuses(self) -> dict[str, TaskStatus]:
        """Every task's status (PENDING until a state is stored); BrokerUnavailable if down."""
        keys = [self.client.meta_key(t) for t in self.ids]
        try:
            raw = self.client.results.mget(keys) if keys else []
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(str(exc)) from exc
        decode = self.client.app.backend.decode
        return {
            t: describe_meta(t, decode(r) if r is not None else None)
            for t, r in zip(self.ids, raw, strict=True)
        }

    def states(self) -> dict[str, str]:
        """Every task's last state, or UNREACHABLE for all while Redis is down."""
        try:
            return {t: s.state for t, s in self.statuses().items()}
        except BrokerUnavailable:
            return dict.fromkeys(self.ids, UNREACHABLE)

    def starts(self) -> dict[str, int]:
        """How often each task's body started: CatalogTask's count in Redis."""
        raw = self.client.results.mget([DELIVERIES + t for t in self.ids]) if self.ids else []
        return {t: int(n or 0) for t, n in zip(self.ids, raw, strict=True)}

    def running(self) -> dict[str, int]:
        """Tasks reporting PROGRESS, with the pid of the pool process that runs them."""
        try:
            statuses = self.statuses()
        except BrokerUnavailable:
            return {}
        return {
            t: int(s.progress["pid"])
            for t, s in statuses.items()
            if s.state == "PROGRESS" and s.progress and "pid" in s.progress
        }

    def wait_running(self, ids: list[str], timeout: float = 60) -> dict[str, int]:
        """Wait until every one of `ids` reports PROGRESS; their pool pids."""
        found: dict[str, int] = {}

        def all_running() -> bool:
            found.clear()
            found.update({t: p for t, p in self.running().items() if t in ids})
            return len(found) == len(ids)

        wait_until(all_running, timeout, f"{len(ids)} tasks running")
        return found

    def all_final(self) -> bool:
        """Whether every task has a final state."""
        return all(s in READY_STATES for s in self.states().values())

    def wait_final(self, timeout: float) -> tuple[dict[str, str], float]:
        """Poll until every task is final or `timeout` passes; last states and seconds taken."""
        started = time.monotonic()
        last: dict[str, str] = dict.fromkeys(self.ids, "PENDING")

        def all_final() -> bool:
            last.update(self.states())
            return all(s in READY_STATES for s in last.values())

        try:
            wait_until(all_final, timeout, "every task final", interval=0.1)
        except TimeoutError:
            pass  # what is not final is counted as lost, not raised
        return last, time.monotonic() - started
