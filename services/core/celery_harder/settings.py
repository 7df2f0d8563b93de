"""Process configuration read from environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from celery_harder import defaults
from celery_harder.routing import check_queue_name, split_queue_list

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


class Settings(BaseSettings):
    """Every setting celery-harder reads; the README's configuration table mirrors it."""

    model_config = SettingsConfigDict(
        env_prefix="CELERY_HARDER_", extra="ignore", frozen=True, populate_by_name=True
    )

    broker_url: str = Field(
        DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("CELERY_BROKER_URL"),
        description="Redis URL of the Celery broker (the seed's name).",
    )
    result_backend: str | None = Field(
        None,
        validation_alias=AliasChoices("CELERY_RESULT_BACKEND"),
        description="Redis URL of the result backend; defaults to the broker URL.",
    )
    unacked_key: str = Field(
        "unacked",
        pattern=r"^[A-Za-z0-9_.:-]{1,200}$",
        description="Redis hash of this worker's delivered, unacknowledged messages (kombu's "
        "unacked_key); one per worker pool, so that each pool's autoscaler counts its own.",
    )
    # NoDecode: the chart writes `unacked,unacked-cpu`, not a JSON list.
    unacked_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Every worker pool's unacked hash, which the API's queue metrics read "
        "(comma- or space-separated); empty: unacked_key alone.",
    )
    queue: str = Field(
        "celery",
        description="Default queue: where a task goes unless its catalog entry or node says.",
    )
    # NoDecode: the chart and shells write `celery,cpu`, not a JSON list.
    queues: Annotated[tuple[str, ...], NoDecode] = Field(
        ("celery",), description="Queues tasks may be routed to (comma- or space-separated)."
    )
    visibility_timeout: int = Field(
        3600, ge=1, description="Seconds before an unacknowledged message is redelivered."
    )
    result_expires: int = Field(
        86400, ge=60, description="Seconds results, issued ids and workflow records are kept."
    )
    task_time_limit: int = Field(300, ge=1, description="Hard per-task time limit in seconds.")
    task_soft_time_limit: int = Field(270, ge=1, description="Soft per-task time limit in seconds.")
    soft_shutdown_timeout: float = Field(
        30.0, ge=0, description="Seconds of soft shutdown before a cold shutdown gives up on tasks."
    )
    max_deliveries: int = Field(
        5, ge=1, description="Times one task id may start before it is failed instead of rerun."
    )
    worker_profile: Literal["default", "fast"] = Field(
        "default",
        description="Worker delivery profile: `default` (late acks, no prefetch, STARTED "
        "shown) or `fast` (early acks, prefetch, no STARTED) for short idempotent tasks; "
        "docs/reliability.md says what `fast` gives up.",
    )
    fast_prefetch_multiplier: int = Field(
        16,
        ge=1,
        le=1000,
        description="Messages each pool process of a `fast` worker reserves ahead (Celery's "
        "worker_prefetch_multiplier); ignored by the default profile.",
    )
    heartbeat_file: Path = Field(
        Path(defaults.HEARTBEAT_FILE),
        description="File the worker touches while it consumes; the liveness probe reads it.",
    )
    heartbeat_interval: float = Field(5.0, gt=0, description="Seconds between heartbeat touches.")
    data_dir: Path = Field(Path("data"), description="Directory document reports are written to.")
    redis_timeout: float = Field(
        2.0, gt=0, description="Seconds to wait for Redis before answering 503."
    )
    api_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body the API accepts (413 above)."
    )
    api_auth: bool = Field(
        True,
        description="Require an API key (X-API-Key) except on /healthz, /readyz and /metrics.",
    )
    # A secret type although it holds digests only: it stays out of reprs and logs.
    api_keys: SecretStr = Field(
        SecretStr(""),
        description="Accepted API keys as `name:scope[,scope]:sha256hex` entries, space-separated.",
    )

    workflow_max_leaves: int = Field(1000, ge=1, description="Most tasks one workflow may hold.")
    workflow_max_depth: int = Field(
        16, ge=1, description="Deepest nesting of chain/group/chord in a workflow."
    )
    workflow_max_argument_bytes: int = Field(
        262_144, ge=64, description="Largest JSON size of one task's args and kwargs."
    )
    workflow_result_preview_bytes: int = Field(
        1024, ge=16, description="Per-node result size shown in workflow status before cutting."
    )

    workflow_poll_interval: float = Field(
        0.5, gt=0, description="Seconds between status reads of the SSE stream and the reaper."
    )

    metrics_redis_timeout: float = Field(
        1.0,
        gt=0,
        description="Seconds a /metrics scrape waits for Redis before serving no queue samples.",
    )

    sse_max_seconds: float = Field(
        300.0, gt=0, description="Seconds one SSE stream lasts at most; clients reconnect."
    )

    operator_poll_interval: float = Field(
        2.0,
        gt=0,
        description="Most seconds between the operator's status reads of a running workflow "
        "(leaf results wake it sooner; this is the fallback).",
    )
    operator_status_max_nodes: int = Field(
        100, ge=0, le=100, description="Most nodes a TaskWorkflow status lists; counts stay whole."
    )
    operator_schedule_interval: float = Field(
        5.0,
        gt=0,
        description="Seconds between the operator's checks of a CronTaskWorkflow's schedule.",
    )
    operator_metrics_port: int = Field(
        8081, ge=0, le=65535, description="Port of the operator's /metrics (0: not served)."
    )
    operator_metrics_host: str = Field(
        "0.0.0.0", description="Address the operator's /metrics listens on."
    )
    # Tests only, and no chart value sets it: a file holding the time the operator's
    # schedules see (RFC 3339), so T2 tests step through minutes without waiting for them.
    operator_clock_file_for_tests: Path | None = Field(
        None, description="Test-only: file whose content is the schedules' current time."
    )

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        return check_queue_name(value)

    @field_validator("queues", mode="before")
    @classmethod
    def _queue_list(cls, value: Any) -> Any:
        return split_queue_list(value) if isinstance(value, str) else value

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_queue_name(q) for q in value)

    @field_validator("unacked_keys", mode="before")
    @classmethod
    def _unacked_list(cls, value: Any) -> Any:
        return split_queue_list(value) if isinstance(value, str) else value

    @field_validator("unacked_keys")
    @classmethod
    def _unacked_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_queue_name(k) for k in value)

    @property
    def all_unacked_keys(self) -> tuple[str, ...]:
        """Every unacked hash to count in flight: the configured list, else unacked_key."""
        return self.unacked_keys or (self.unacked_key,)

    @property
    def known_queues(self) -> tuple[str, ...]:
        """Every queue a task may be sent to: the default queue first, then the configured list."""
        # The default queue is always known, so CELERY_HARDER_QUEUE=jobs alone keeps working.
        return tuple(dict.fromkeys((self.queue, *self.queues)))

    @property
    def result_backend_url(self) -> str:
        """The result backend URL, falling back to the broker's."""
        return self.result_backend or self.broker_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process from the environment."""
    return Settings()
