"""The operator's Prometheus metrics, served from its own /metrics.

Handlers stay thin: they call `instrumented`, `METRICS.resources.apply` and the
pure helpers below; the names come from `celery_harder.metric_names`. The registry
is the process's own (one operator per cluster: `--standalone`, one replica).
"""

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector

from celery_harder import metric_names as mn
from celery_harder.metrics_registry import WorkflowMetrics, counter, gauge, gauge_samples, histogram
from celery_harder.workflow.status import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED

log = logging.getLogger(__name__)

TASKWORKFLOW, CRONTASKWORKFLOW = "TaskWorkflow", "CronTaskWorkflow"
#: Phases a TaskWorkflow shows; one without a phase yet counts as Pending.
TASKWORKFLOW_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)
#: A CronTaskWorkflow's "phase" is the reason of its Ready condition.
CRON_PHASES = ("Pending", "Scheduled", "Waiting", "Suspended", "ValidationFailed")
PHASES = {TASKWORKFLOW: TASKWORKFLOW_PHASES, CRONTASKWORKFLOW: CRON_PHASES}
OTHER_PHASE = "Other"

F = TypeVar("F", bound=Callable[..., Any])


def taskworkflow_phase(status: Mapping[str, Any]) -> str:
    """The phase label of a TaskWorkflow's status (bounded: unknown values are Other)."""
    phase = status.get("phase") or PENDING
    return phase if phase in TASKWORKFLOW_PHASES else OTHER_PHASE


def cron_phase(status: Mapping[str, Any]) -> str:
    """The phase label of a CronTaskWorkflow: its Ready condition's reason."""
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    reason = (ready or {}).get("reason") or "Pending"
    return reason if reason in CRON_PHASES else OTHER_PHASE


def dispatch_latency(creation_timestamp: str | None, now: datetime) -> float | None:
    """Seconds from a resource's creationTimestamp (RFC 3339) to `now`; None if unknown.

    The API server stores whole seconds, so a dispatch within the same second as the
    creation can read up to a second late, never early; a negative span (clock skew
    between the operator and the API server) counts as 0.
    """
    if not creation_timestamp:
        return None
    try:
        created = datetime.fromisoformat(creation_timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((now - created).total_seconds(), 0.0)


class ResourcePhases(Collector):
    """Resources by kind and phase, kept from the watch events kopf delivers.

    Every event (the initial listing included) records the object's current phase
    under its uid; a DELETED event forgets it. Collected as a gauge with every known
    phase of each kind, zeros included.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[str, str]] = {}

    def apply(self, kind: str, event_type: str | None, uid: str, phase: str) -> None:
        with self._lock:
            if event_type == "DELETED":
                self._phases.pop(uid, None)
            else:
                self._phases[uid] = (kind, phase)

    def counts(self) -> dict[tuple[str, str], int]:
        counts = {(kind, phase): 0 for kind, phases in PHASES.items() for phase in phases}
        with self._lock:
            for key in self._phases.values():
                counts[key] = counts.get(key, 0) + 1
        return counts

    def collect(self) -> Iterator[Family]:
        yield gauge_samples(mn.OPERATOR_RESOURCES, list(self.counts().items()))


class OperatorMetrics:
    """Every metric the operator serves, on one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = counter(mn.OPERATOR_RECONCILES, self.registry)
        self.errors = counter(mn.OPERATOR_RECONCILE_ERRORS, self.registry)
        self.dispatch_latency = histogram(mn.OPERATOR_DISPATCH_LATENCY, self.registry)
        self.last_sync = gauge(mn.OPERATOR_LAST_SYNC, self.registry)
        self.resources = ResourcePhases()
        self.registry.register(self.resources)
        self.workflows = WorkflowMetrics(self.registry)

    def synced(self) -> None:
        """A sync went through: the last-sync timestamp is now."""
        self.last_sync.set(time.time())


METRICS = OperatorMetrics()


def instrumented(handler: str, metrics: OperatorMetrics = METRICS) -> Callable[[F], F]:
    """Count every run of a handler, and every run that raised, under `handler`.

    functools.wraps keeps the function's name and qualname: kopf derives handler ids
    (and the progress annotations kept under them) from those.
    """

    def wrap(fn: F) -> F:
        metrics.reconciles.labels(handler=handler)
        metrics.errors.labels(handler=handler)

        if inspect.iscoroutinefunction(fn):
            # An async handler stays async: kopf awaits it in the event loop.
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                metrics.reconciles.labels(handler=handler).inc()
                try:
                    return await fn(*args, **kwargs)
                except Exception:
                    metrics.errors.labels(handler=handler).inc()
                    raise

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            metrics.reconciles.labels(handler=handler).inc()
            try:
                return fn(*args, **kwargs)
            except Exception:
                metrics.errors.labels(handler=handler).inc()
                raise

        return run  # type: ignore[return-value]

    return wrap


def serve(port: int, host: str, metrics: OperatorMetrics = METRICS) -> Callable[[], None] | None:
    """Serve /metrics on `host:port` in a daemon thread; the function that stops it.

    Port 0 serves nothing (None).
    """
    if not port:
        return None
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("metrics on http://%s:%d/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
