"""Every Prometheus metric celery-harder serves or reads: the one source of their names.

The API, the operator, the dashboards generator, the alert rules' tests and the
Prometheus tests all take names from here. Counters are named without `_total`
(prometheus-client appends it); `Metric.series` is the name a query uses.
Labels stay bounded: no task, workflow or resource ids, no pod names.
"""

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

#: Workflow outcomes, the `outcome` label of the finished counter and duration histogram.
OUTCOMES = ("succeeded", "failed", "cancelled", "timed_out")

#: Seconds: a workflow runs from milliseconds (one task) to hours (a large chord).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
#: Seconds from a resource's creation to its dispatch: the operator's reaction time.
DISPATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class Metric:
    """One metric: name, type, help text and its (bounded) labels."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def series(self) -> str:
        """The sample name PromQL selects (`_total` for counters, `_bucket` etc. aside)."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


# --- API -------------------------------------------------------------------------
TASKS_SUBMITTED = Metric(
    "celery_harder_tasks_submitted",
    "counter",
    "Tasks the API sent to the broker, by catalog name.",
    ("task",),
)
WORKFLOWS_SUBMITTED = Metric(
    "celery_harder_workflows_submitted",
    "counter",
    "Workflows the API accepted, by the kind of their root node.",
    ("kind",),
)

# --- Workflows (counted by the process that observes the event: API or operator) ---
WORKFLOWS_STARTED = Metric(
    "celery_harder_workflows_started",
    "counter",
    "Workflows dispatched to the broker (counted once per workflow, by the dispatcher).",
)
WORKFLOWS_FINISHED = Metric(
    "celery_harder_workflows_finished",
    "counter",
    "Workflows that reached a final phase, by outcome (counted once per workflow).",
    ("outcome",),
)
WORKFLOW_DURATION = Metric(
    "celery_harder_workflow_duration_seconds",
    "histogram",
    "Seconds from a workflow's creation to its final phase, by outcome.",
    ("outcome",),
    DURATION_BUCKETS,
)

# --- Queues (read from Redis at scrape time by the API) ----------------------------
QUEUE_WAITING = Metric(
    "celery_harder_queue_waiting_messages",
    "gauge",
    "Messages waiting in a queue, its priority sub-lists summed.",
    ("queue",),
)
QUEUE_WAITING_BY_PRIORITY = Metric(
    "celery_harder_queue_waiting_messages_by_priority",
    "gauge",
    "Messages waiting in one priority sub-list of a queue (kombu's priority steps).",
    ("queue", "priority"),
)
QUEUE_IN_FLIGHT = Metric(
    "celery_harder_queue_in_flight_messages",
    "gauge",
    "Messages delivered to a worker and not yet acknowledged, by queue.",
    ("queue",),
)
WORKFLOWS_OVERDUE = Metric(
    "celery_harder_workflows_overdue",
    "gauge",
    "Workflows still unfinished past their deadline (the reaper should have timed them out).",
)
REDIS_UP = Metric(
    "celery_harder_redis_up",
    "gauge",
    "1 when this scrape read the queues from Redis, 0 when Redis did not answer "
    "(the queue and overdue gauges are absent then).",
)
QUEUE_SCRAPE_DURATION = Metric(
    "celery_harder_queue_scrape_duration_seconds",
    "gauge",
    "Seconds this scrape spent reading the queues from Redis.",
)

# --- Operator (its own /metrics) ---------------------------------------------------
OPERATOR_RECONCILES = Metric(
    "celery_harder_operator_reconciles",
    "counter",
    "Handler runs of the operator, by handler.",
    ("handler",),
)
OPERATOR_RECONCILE_ERRORS = Metric(
    "celery_harder_operator_reconcile_errors",
    "counter",
    "Handler runs that raised, by handler.",
    ("handler",),
)
OPERATOR_RESOURCES = Metric(
    "celery_harder_operator_resources",
    "gauge",
    "Resources the operator watches, by kind and phase.",
    ("kind", "phase"),
)
OPERATOR_DISPATCH_LATENCY = Metric(
    "celery_harder_operator_dispatch_latency_seconds",
    "histogram",
    "Seconds from a TaskWorkflow's creation to its dispatch.",
    (),
    DISPATCH_BUCKETS,
)
OPERATOR_LAST_SYNC = Metric(
    "celery_harder_operator_last_sync_timestamp_seconds",
    "gauge",
    "Unix time of the operator's last successful status sync.",
)

OWN_METRICS = (
    TASKS_SUBMITTED,
    WORKFLOWS_SUBMITTED,
    WORKFLOWS_STARTED,
    WORKFLOWS_FINISHED,
    WORKFLOW_DURATION,
    QUEUE_WAITING,
    QUEUE_WAITING_BY_PRIORITY,
    QUEUE_IN_FLIGHT,
    WORKFLOWS_OVERDUE,
    REDIS_UP,
    QUEUE_SCRAPE_DURATION,
    OPERATOR_RECONCILES,
    OPERATOR_RECONCILE_ERRORS,
    OPERATOR_RESOURCES,
    OPERATOR_DISPATCH_LATENCY,
    OPERATOR_LAST_SYNC,
)

# --- Read, not served: prometheus-fastapi-instrumentator and celery-exporter -------
HTTP_REQUESTS = Metric(
    "http_requests",
    "counter",
    "API requests by handler, method and status class (instrumentator).",
    ("handler", "method", "status"),
)
HTTP_REQUEST_DURATION = Metric(
    "http_request_duration_seconds",
    "histogram",
    "API request latency by handler and method (instrumentator).",
    ("handler", "method"),
)
EXPORTER_TASK_SENT = Metric(
    "celery_task_sent", "counter", "celery-exporter.", ("name", "hostname", "queue_name")
)
EXPORTER_TASK_RECEIVED = Metric(
    "celery_task_received", "counter", "celery-exporter.", ("name", "hostname", "queue_name")
)
EXPORTER_TASK_STARTED = Metric(
    "celery_task_started", "counter", "celery-exporter.", ("name", "hostname", "queue_name")
)
EXPORTER_TASK_SUCCEEDED = Metric(
    "celery_task_succeeded", "counter", "celery-exporter.", ("name", "hostname", "queue_name")
)
EXPORTER_TASK_FAILED = Metric(
    "celery_task_failed",
    "counter",
    "celery-exporter.",
    ("name", "hostname", "queue_name", "exception"),
)
EXPORTER_TASK_RUNTIME = Metric(
    "celery_task_runtime", "histogram", "celery-exporter.", ("name", "hostname", "queue_name")
)
EXPORTER_WORKER_UP = Metric("celery_worker_up", "gauge", "celery-exporter.", ("hostname",))
EXPORTER_WORKER_TASKS_ACTIVE = Metric(
    "celery_worker_tasks_active", "gauge", "celery-exporter.", ("hostname",)
)
