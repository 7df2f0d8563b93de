"""HTTP bodies: request models are the catalog's, responses are defined here."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from celery_harder.catalog import CATALOG, ArgumentError, UnknownTaskError, validate_call
from celery_harder.results import TaskStatus


class TaskCall(BaseModel):
    """One call of a catalog task by name."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"task": "add", "args": [2, 3], "kwargs": {}}]},
    )

    task: str = Field(description="A catalog task name (GET /tasks lists them).")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_task_with_fitting_arguments(self) -> "TaskCall":
        try:
            validate_call(self.task, self.args, self.kwargs)
        except (UnknownTaskError, ArgumentError) as exc:
            raise ValueError(str(exc)) from None
        return self


class TaskSubmitted(BaseModel):
    """The id to follow a submitted task with at GET /result/{task_id}."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"task_id": "6f1c…"}]})

    task_id: str


class ErrorInfo(BaseModel):
    """A failed task's exception type and message."""

    type: str
    message: str


class TaskResult(BaseModel):
    """A task's state (Celery's names), result, progress meta and error."""

    task_id: str
    state: str
    result: Any = None
    progress: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    @classmethod
    def from_status(cls, status: TaskStatus) -> "TaskResult":
        """The response for a core TaskStatus."""
        error = (
            ErrorInfo(type=status.error.type, message=status.error.message)
            if status.error
            else None
        )
        return cls(
            task_id=status.task_id,
            state=status.state,
            result=status.result,
            progress=status.progress,
            error=error,
        )


class CatalogEntry(BaseModel):
    """One task of the catalog as GET /tasks shows it."""

    name: str
    summary: str
    parameters: list[str]
    schema_: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any]


def catalog_entries() -> list[CatalogEntry]:
    """Every catalog task, for GET /tasks."""
    return [
        CatalogEntry(
            name=spec.name,
            summary=spec.summary,
            parameters=spec.parameters,
            schema=spec.args_model.model_json_schema(),
            example=dict(spec.example_kwargs),
        )
        for spec in CATALOG.values()
    ]
