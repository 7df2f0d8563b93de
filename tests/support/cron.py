"""Helpers for the CronTaskWorkflow T2 tests: the operator's test clock, manifests, runs."""

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery_harder_operator.cron_resource import OWNER_LABEL
from celery_harder_operator.schedule import format_time, parse_time
from tests.support.operator_process import OperatorProcess

# The operator's schedule checks in the tests: often, so that each step takes a second.
INTERVAL = 0.5
CLOCK_ENV = "CELERY_HARDER_OPERATOR_CLOCK_FILE_FOR_TESTS"


@dataclass
class StoppedClock:
    """The time the operator's schedules see: a file the tests write (the clock stands still)."""

    path: Path

    def set(self, moment: datetime) -> None:
        # Written whole, then renamed: the operator never reads half a timestamp.
        partial = self.path.with_suffix(".partial")
        partial.write_text(format_time(moment))
        os.replace(partial, self.path)

    def hold_before(self, moment: datetime) -> None:
        """Stop the clock well before `moment` (a resource created then has nothing due)."""
        self.set(moment - timedelta(seconds=5))


def operator_env(clock: StoppedClock) -> dict[str, str]:
    return {CLOCK_ENV: str(clock.path), "CELERY_HARDER_OPERATOR_SCHEDULE_INTERVAL": str(INTERVAL)}


def ctw(name: str, workflow: Any, schedule: str = "* * * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "celery-harder.io/v1alpha1",
        "kind": "CronTaskWorkflow",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "workflowTemplate": {"spec": {"workflow": workflow}},
                 **spec},
    }  # fmt: skip


def minute_after(moment: datetime, minutes: int = 1) -> datetime:
    """The minute boundary `minutes` boundaries after `moment`."""
    floor = moment.replace(second=0, microsecond=0)
    return floor + timedelta(minutes=minutes)


def minutes_since_epoch(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


def get_ctw(kube_api, ns: str, name: str) -> dict[str, Any]:
    return kube_api.kubectl_json("get", "ctw", name, "-n", ns)


def created(obj: dict[str, Any]) -> datetime:
    moment = parse_time(obj["metadata"]["creationTimestamp"])
    assert moment is not None
    return moment


def runs(kube_api, ns: str, owner: str) -> list[dict[str, Any]]:
    """The owner's runs, oldest first."""
    items = kube_api.kubectl_json("get", "tw", "-n", ns, "-l", f"{OWNER_LABEL}={owner}")["items"]
    return sorted(items, key=lambda i: i["metadata"]["name"])


def run_names(kube_api, ns: str, owner: str) -> list[str]:
    return [r["metadata"]["name"] for r in runs(kube_api, ns, owner)]


def ticks(operator: OperatorProcess, ns: str, name: str) -> int:
    """How many schedule checks kopf has run for one CronTaskWorkflow (its INFO log line)."""
    needle = f"[{ns}/{name}] Timer 'evaluate' succeeded."
    logs = operator.stack.workdir.glob("operator-*.log")
    return sum(log.read_text().count(needle) for log in logs)


def wait_ticks(operator: OperatorProcess, ns: str, name: str, count: int = 3) -> None:
    """Wait until the operator has looked at the schedule `count` more times."""
    target = ticks(operator, ns, name) + count
    deadline = time.monotonic() + 30
    while ticks(operator, ns, name) < target:
        assert time.monotonic() < deadline, f"{ns}/{name}: fewer than {count} checks in 30 s"
        time.sleep(0.1)


def wait_for(what: str, probe, timeout: float = 60) -> Any:
    """Poll `probe` until it returns something truthy; AssertionError with the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}; last: {json.dumps(value, default=str)[:2000]}")


def events(kube_api, ns: str, name: str) -> list[str]:
    items = kube_api.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return [e["reason"] for e in items for _ in range(e.get("count") or 1)]


def real_now() -> datetime:
    return datetime.now(UTC)
