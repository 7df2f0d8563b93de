"""The task catalog: every public task's name and the model of its arguments.

The API validates submissions against it and the worker registers its tasks under
these names, so a name or an argument shape is stated here once.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from celery_harder.documents import MAX_TOP_TERMS, REPORT_NAME_PATTERN

# Strict: JSON numbers only. Lax mode would take `false` as 0 and "2" as 2, so a
# request the OpenAPI document calls invalid would be run.
StrictInt = Annotated[int, Field(strict=True)]
StrictFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
FiniteNumber = StrictInt | StrictFloat


def json_number_only(value: Any) -> Any:
    """Refuse booleans and strings where a number is expected (lax mode would convert them)."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON number")
    return value


# An integer as JSON Schema means it: 2 and 2.0, never true or "2".
JsonInt = Annotated[int, BeforeValidator(json_number_only)]


class TaskArgs(BaseModel):
    """Base of every argument model: unknown or non-finite arguments are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AddArgs(TaskArgs):
    x: FiniteNumber
    y: FiniteNumber


class MulArgs(TaskArgs):
    x: FiniteNumber
    y: FiniteNumber


class XsumArgs(TaskArgs):
    numbers: list[FiniteNumber] = Field(max_length=100_000)


class RequestInfoArgs(TaskArgs):
    data: Any


class SleepArgs(TaskArgs):
    seconds: float = Field(ge=0, le=3600, strict=True, allow_inf_nan=False)


class FailArgs(TaskArgs):
    message: str = Field("failed on purpose", max_length=1000)


class SplitArgs(TaskArgs):
    text: str
    lines_per_chunk: JsonInt = Field(200, ge=1, le=1_000_000)


class AnalyseArgs(TaskArgs):
    text: str


class MergeArgs(TaskArgs):
    partials: list[dict[str, Any]] = Field(min_length=1)


class WriteReportArgs(TaskArgs):
    stats: dict[str, Any]
    name: str | None = Field(None, pattern=REPORT_NAME_PATTERN)
    top: JsonInt = Field(10, ge=1, le=MAX_TOP_TERMS)


@dataclass(frozen=True)
class TaskSpec:
    """One catalog entry: registered name, argument model, what it does, an example call, queue."""

    name: str
    args_model: type[TaskArgs]
    summary: str
    example_kwargs: Mapping[str, Any]
    # The task's default queue. None means the configured default (CELERY_HARDER_QUEUE,
    # `celery`): every task of the catalog so far, so existing deployments route as before.
    queue: str | None = None

    @property
    def parameters(self) -> list[str]:
        """Argument names in positional order."""
        return list(self.args_model.model_fields)


ADD = TaskSpec("add", AddArgs, "x + y", {"x": 2, "y": 3})
MUL = TaskSpec("mul", MulArgs, "x * y", {"x": 4, "y": 6})
XSUM = TaskSpec("xsum", XsumArgs, "sum of a list of numbers", {"numbers": [1, 2, 3]})
REQUEST_INFO = TaskSpec(
    "request_info", RequestInfoArgs, "what self.request shows inside a task", {"data": "hello"}
)
SLEEP = TaskSpec("sleep", SleepArgs, "sleep, reporting PROGRESS every second", {"seconds": 3})
FAIL = TaskSpec("fail", FailArgs, "raise an error on purpose", {"message": "boom"})
DOC_SPLIT = TaskSpec(
    "documents.split",
    SplitArgs,
    "split a text into chunks of whole lines",
    {"text": "a b\nc d\n", "lines_per_chunk": 1},
)
DOC_ANALYSE = TaskSpec(
    "documents.analyse",
    AnalyseArgs,
    "count lines, words, characters and terms of a text",
    {"text": "the quick brown fox"},
)
DOC_MERGE = TaskSpec(
    "documents.merge",
    MergeArgs,
    "merge partial statistics into one",
    {"partials": [{"lines": 1, "words": 2, "characters": 4, "terms": {"a": 2}}]},
)
DOC_WRITE_REPORT = TaskSpec(
    "documents.write_report",
    WriteReportArgs,
    "write statistics to a report file in the data directory",
    {"stats": {"lines": 1, "words": 2, "characters": 4, "terms": {"a": 2}}, "name": "notes"},
)

CATALOG: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        ADD,
        MUL,
        XSUM,
        REQUEST_INFO,
        SLEEP,
        FAIL,
        DOC_SPLIT,
        DOC_ANALYSE,
        DOC_MERGE,
        DOC_WRITE_REPORT,
    )
}


class UnknownTaskError(ValueError):
    """A task name that is not in the catalog."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown task {name!r}; known tasks: {', '.join(sorted(CATALOG))}")
        self.name = name


class ArgumentError(ValueError):
    """Arguments that do not fit a task; `errors` are pydantic's, locations by parameter."""

    def __init__(self, task: str, errors: list[dict[str, Any]]) -> None:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in errors
        )
        super().__init__(f"invalid arguments for {task!r}: {detail}")
        self.task = task
        self.errors = errors


def get_task(name: str) -> TaskSpec:
    """The catalog entry for `name`, or UnknownTaskError."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownTaskError(name) from None


def validate_call(
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    receives_parent_result: bool = False,
) -> TaskSpec:
    """Check a call against the catalog; raise UnknownTaskError or ArgumentError.

    With `receives_parent_result` the first parameter is filled at run time by the
    previous step of a chain (or a chord's header), so it may be absent here.
    """
    spec = get_task(name)
    params = spec.parameters
    offset = 1 if receives_parent_result else 0
    kwargs = dict(kwargs or {})
    positional = params[offset:]
    if len(args) > len(positional):
        raise ArgumentError(
            name,
            [{"loc": ("args",), "msg": f"takes at most {len(positional)} positional arguments"}],
        )
    if offset and params and params[0] in kwargs:
        # Celery passes the previous result positionally: naming it too is a TypeError at run time.
        raise ArgumentError(
            name, [{"loc": (params[0],), "msg": "is the previous step's result; do not name it"}]
        )
    bound = dict(zip(positional, args, strict=False))
    duplicated = sorted(set(bound) & set(kwargs))
    if duplicated:
        raise ArgumentError(
            name, [{"loc": (d,), "msg": "given both positionally and by name"} for d in duplicated]
        )
    bound.update(kwargs)
    try:
        spec.args_model.model_validate(bound)
    except ValidationError as exc:
        errors = [
            {"loc": e["loc"], "msg": e["msg"]}
            for e in exc.errors()
            if not (offset and e["type"] == "missing" and e["loc"] == (params[0],))
        ]
        if errors:
            raise ArgumentError(name, errors) from None
    return spec
