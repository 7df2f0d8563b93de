"""HTTP bodies: request models are the catalog's, responses are defined here."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from celery_harder.catalog import CATALOG, ArgumentError, UnknownTaskError, validate_call
from celery_harder.documents import MAX_TOP_TERMS, REPORT_NAME_PATTERN
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


class Call(BaseModel):
    """A task call inside a chain, group or chord; checked with its place in the canvas."""

    model_config = ConfigDict(extra="forbid")

    task: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ChainRequest(BaseModel):
    """Steps run in order; each result is the first argument of the next step."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "steps": [
                        {"task": "add", "args": [2, 2]},
                        {"task": "add", "args": [4]},
                        {"task": "mul", "args": [3]},
                    ]
                }
            ]
        },
    )

    steps: list[Call] = Field(min_length=1)


class GroupRequest(BaseModel):
    """Tasks run in parallel; the result is the list of their results."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tasks": [{"task": "add", "args": [i, i]} for i in range(3)]}]
        },
    )

    tasks: list[Call] = Field(min_length=1)


class ChordRequest(BaseModel):
    """A group whose results, as one list, are the body's first argument."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "header": [{"task": "add", "args": [i, i]} for i in range(3)],
                    "body": {"task": "xsum"},
                }
            ]
        },
    )

    header: list[Call] = Field(min_length=1)
    body: Call


class WorkflowRequest(BaseModel):
    """A workflow spec (a Node) and an optional deadline."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "workflow": {
                        "chord": {
                            "header": [
                                {"task": "add", "args": [1, 1]},
                                {"task": "add", "args": [2, 2]},
                            ],
                            "body": {"task": "xsum"},
                        }
                    },
                    "timeoutSeconds": 60,
                }
            ]
        },
    )

    workflow: Any = Field(description="A Node: one of task, chain, group, chord.")
    timeout_seconds: int | None = Field(None, alias="timeoutSeconds", ge=1, le=7 * 86400)


class DocumentRequest(BaseModel):
    """A text to run through split → analyse chunks → merge → write report."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"text": "one line\nanother line\n", "name": "notes", "linesPerChunk": 1}]
        },
    )

    text: str
    name: str | None = Field(None, pattern=REPORT_NAME_PATTERN)
    lines_per_chunk: int = Field(200, alias="linesPerChunk", ge=1, le=1_000_000)
    top: int = Field(10, ge=1, le=MAX_TOP_TERMS)


class LeafInfo(BaseModel):
    """A task of a workflow and where it sits."""

    path: str
    task: str
    task_id: str = Field(serialization_alias="taskId")


class WorkflowSubmitted(BaseModel):
    """Ids to follow a workflow by: its own, and each task's."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "9b2e…", "tasks": []}]})

    id: str
    status_url: str = Field(serialization_alias="statusUrl")
    events_url: str = Field(serialization_alias="eventsUrl")
    tasks: list[LeafInfo]
