"""HTTP bodies: calls and nodes come from the catalog (calls.py), the rest is defined here."""

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation

from celery_harder.catalog import CATALOG, JsonInt, json_number_only
from celery_harder.documents import MAX_TOP_TERMS, REPORT_NAME_PATTERN
from celery_harder.results import TaskStatus
from celery_harder.workflow.status import NODE_PHASES
from celery_harder_api.calls import CallSteps, Node, StepCall, TaskCall


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

    steps: CallSteps = Field(
        description="The first step takes all its arguments; each later one gets the previous "
        "result as its first argument."
    )


class GroupRequest(BaseModel):
    """Tasks run in parallel; the result is the list of their results."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tasks": [{"task": "add", "args": [i, i]} for i in range(3)]}]
        },
    )

    tasks: list[TaskCall] = Field(min_length=1)


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

    header: list[TaskCall] = Field(min_length=1)
    body: StepCall = Field(
        description="Gets the list of the header's results as its first argument."
    )


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

    # The spec parser checks the tree (every error with its node path); the schema is the
    # catalog-derived Node so that the document still says what is valid.
    workflow: SkipValidation[Node] = Field(
        description="A Node: one of task, chain, group, chord. At most "
        "CELERY_HARDER_WORKFLOW_MAX_LEAVES tasks (1000), CELERY_HARDER_WORKFLOW_MAX_DEPTH "
        "levels (16), CELERY_HARDER_WORKFLOW_MAX_ARGUMENT_BYTES of JSON arguments per task "
        "(262144); beyond that 422."
    )
    # The bounds sit on the int inside the Optional, before the validator: elsewhere
    # pydantic writes them as `ge`/`le`, which JSON Schema does not know.
    timeout_seconds: (
        Annotated[int, Field(ge=1, le=7 * 86400), BeforeValidator(json_number_only)] | None
    ) = Field(None, alias="timeoutSeconds")


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
    lines_per_chunk: JsonInt = Field(200, alias="linesPerChunk", ge=1, le=1_000_000)
    top: JsonInt = Field(10, ge=1, le=MAX_TOP_TERMS)


class LeafInfo(BaseModel):
    """A task of a workflow and where it sits."""

    path: str
    task: str
    task_id: str = Field(serialization_alias="taskId")


class WorkflowSubmitted(BaseModel):
    """Ids to follow a workflow by: its own, and each task's."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9b2e…",
                    "statusUrl": "/workflows/9b2e…",
                    "eventsUrl": "/workflows/9b2e…/events",
                    "tasks": [{"path": "workflow", "task": "add", "taskId": "6f1c…"}],
                }
            ]
        }
    )

    id: str
    status_url: str = Field(serialization_alias="statusUrl")
    events_url: str = Field(serialization_alias="eventsUrl")
    tasks: list[LeafInfo]


Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled", "Skipped"]
assert set(get_args(Phase)) == set(NODE_PHASES), "phases drifted from celery_harder.workflow.status"


class NodeStatusBody(BaseModel):
    """One task of a workflow: where it sits, its Celery state and phase, result or error."""

    model_config = ConfigDict(populate_by_name=True)

    path: str
    task: str
    task_id: str = Field(alias="taskId")
    state: str = Field(description="Celery's state name (PENDING, STARTED, SUCCESS, …).")
    phase: Phase
    result: Any = Field(None, description="The result, or a cut preview of a large one.")
    error: dict[str, str] | None = None
    progress: dict[str, Any] | None = None
    started_at: str | None = Field(None, alias="startedAt")
    finished_at: str | None = Field(None, alias="finishedAt")


class WorkflowStatusBody(BaseModel):
    """A workflow's phase, why, how far (`done/total`), each task, and the final result."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
    reason: str
    message: str
    progress: str = Field(pattern=r"^[0-9]+/[0-9]+$", examples=["2/3"])
    counts: dict[str, int] = Field(description="Tasks per phase, and `total`.")
    result: Any = None
    failed_node: str | None = Field(None, alias="failedNode")
    created_at: str | None = Field(None, alias="createdAt")
    started_at: str | None = Field(None, alias="startedAt")
    finished_at: str | None = Field(None, alias="finishedAt")
    deadline: str | None = None
    nodes: list[NodeStatusBody]
