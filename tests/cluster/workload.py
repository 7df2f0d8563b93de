"""What the T4-local tests put on the cluster and how they count what became of it."""

import time
import uuid
from dataclasses import dataclass, field

import redis

from celery_harder import keys
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from celery_harder_dev.queues import queue_keys
from tests.support.release import Release

QUEUE = "celery"
MAX_REPLICAS = 4  # keda.maxReplicaCount in charts/celery-harder/ci/local-cluster-values.yaml


def task_client(release: Release) -> TaskClient:
    """A Celery client of the release's Redis, at its Service address, with its password."""
    service = release.get("service", release.component("redis"))
    password = release.secret(release.component("redis"), "redis-password")
    url = f"redis://:{password}@{service['spec']['clusterIP']}:6379/0"
    return create_task_client(Settings(broker_url=url, result_backend=url))


@dataclass
class Ledger:
    """Every task a test submitted, and what became of it."""

    client: TaskClient
    ids: list[str] = field(default_factory=list)

    def submit(self, seconds: float, count: int, priority: int = 0, queue: str = QUEUE) -> None:
        for _ in range(count):
            task_id = str(uuid.uuid4())
            self.client.record_issued([task_id])
            self.client.app.send_task(
                "sleep", args=[seconds], task_id=task_id, queue=queue, priority=priority
            )
            self.ids.append(task_id)

    def states(self) -> dict[str, str]:
        out = {}
        for task_id in self.ids:
            status = self.client.status(task_id)
            out[task_id] = status.state if status else "UNKNOWN"
        return out

    def executions(self) -> dict[str, int]:
        """How often each task's body started (the worker's own count, CatalogTask)."""
        raw = self.client.results.mget([keys.DELIVERIES + t for t in self.ids])
        return {t: int(n or 0) for t, n in zip(self.ids, raw, strict=True)}

    def report(self, case: str) -> dict[str, int]:
        states = self.states()
        runs = self.executions()
        counts = {
            "tasks": len(self.ids),
            "completed": sum(1 for s in states.values() if s == "SUCCESS"),
            "lost": sum(1 for s in states.values() if s != "SUCCESS"),
            "duplicated": sum(1 for n in runs.values() if n > 1),
        }
        print(f"{case}: {counts}")
        return counts

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.client.settings.broker_url, socket_timeout=5)

    def done(self) -> bool:
        return all(s == "SUCCESS" for s in self.states().values())


@dataclass
class Timeline:
    """Samples of queue length, in-flight count and worker replicas."""

    release: Release
    broker: redis.Redis
    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[float, int, int, int, int]] = field(default_factory=list)

    def sample(self) -> tuple[float, int, int, int, int]:
        waiting = sum(int(self.broker.llen(k)) for k in queue_keys(QUEUE))
        in_flight = int(self.broker.hlen("unacked"))
        deployment = self.release.get("deployment", self.release.component("worker"))
        wanted = int(deployment["spec"].get("replicas", 0))
        ready = int(deployment.get("status", {}).get("readyReplicas", 0))
        row = (round(time.monotonic() - self.started, 1), waiting, in_flight, wanted, ready)
        self.rows.append(row)
        return row

    def print(self) -> None:
        print(f"{'t (s)':>7} {'waiting':>8} {'in flight':>9} {'replicas':>8} {'ready':>6}")
        for row in self.rows:
            print(f"{row[0]:>7} {row[1]:>8} {row[2]:>9} {row[3]:>8} {row[4]:>6}")
