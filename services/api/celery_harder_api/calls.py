"""Task calls and workflow nodes as OpenAPI sees them, derived from the task catalog.

Every catalog task gets call models of its own: `task` is its name (the union's
discriminator) and `args`/`kwargs` follow its argument model, so a generated client or
a fuzzer knows what each task accepts. A call in a canvas either stands first or
receives the previous result as its first argument (chain steps after the first, a
chord's body); the second kind ("step") has that parameter taken away.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    RootModel,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import core_schema

from celery_harder.catalog import CATALOG, ArgumentError, TaskSpec, UnknownTaskError, validate_call
from celery_harder.settings import get_settings
from celery_harder.workflow.spec import ALLOWED_OPTIONS

JsonSchema = dict[str, Any]


def parameter_schemas(spec: TaskSpec) -> tuple[list[str], dict[str, JsonSchema], set[str]]:
    """A task's parameters in positional order, each one's JSON schema, the required ones."""
    schema = spec.args_model.model_json_schema()
    assert "$defs" not in schema, f"{spec.name}: argument models must not nest models"
    props = {
        name: {k: v for k, v in prop.items() if k != "title"}
        for name, prop in schema["properties"].items()
    }
    return spec.parameters, props, set(schema.get("required", []))


def arity_variants(spec: TaskSpec, receives: bool) -> list[JsonSchema]:
    """One schema per count of positional arguments: what must be named then, and how.

    `validate_call` binds `args` to the parameters in order and `kwargs` to the rest; a
    parameter given both ways, or missing, is refused. Spelling each count out makes
    the schema say exactly that (JSON Schema has no "x in args or in kwargs" keyword).
    """
    params, props, required = parameter_schemas(spec)
    if receives and params:
        required = required - {params[0]}
        params = params[1:]
    variants = []
    for count in range(len(params) + 1):
        positional, named = params[:count], params[count:]
        args: JsonSchema = {"type": "array", "maxItems": count}
        if count:
            args |= {"prefixItems": [props[p] for p in positional], "minItems": count}
        kwargs: JsonSchema = {
            "type": "object",
            "properties": {p: props[p] for p in named},
            "additionalProperties": False,
        }
        must_name = [p for p in named if p in required]
        if must_name:
            kwargs["required"] = must_name
        variant: JsonSchema = {"properties": {"args": args, "kwargs": kwargs}}
        needed = (["args"] if count else []) + (["kwargs"] if must_name else [])
        if needed:
            variant["required"] = needed
        variants.append(variant)
    return variants


def model_name(spec: TaskSpec, suffix: str) -> str:
    """`documents.write_report` + `Call` -> `DocumentsWriteReportCall`."""
    words = spec.name.replace(".", "_").split("_")
    return "".join(w.capitalize() for w in words) + suffix


def option_schema(kind: Any, queues: Sequence[str]) -> JsonSchema:
    """One option's schema: a queue is one of the configured queues, the rest are numbers."""
    if kind is str:
        return {"type": "string", "enum": list(queues), "description": "Queue to send the task to."}
    return {"type": "integer" if kind is int else "number"}


def options_schema(queues: Sequence[str] | None = None) -> JsonSchema:
    """The `options` object of a workflow task node, from the spec's ALLOWED_OPTIONS.

    The queue enum is this process's configured queues (read once, at import).
    """
    known = get_settings().known_queues if queues is None else queues
    return {
        "type": "object",
        "description": "Per-task Celery options.",
        "properties": {name: option_schema(kind, known) for name, kind in ALLOWED_OPTIONS.items()},
        "additionalProperties": False,
    }


def with_immutable(variant: JsonSchema, immutable: bool) -> JsonSchema:
    """`variant` for nodes whose `immutable` is the given value (absent means false)."""
    properties = {**variant["properties"], "immutable": {"const": immutable}}
    required = variant.get("required", []) + (["immutable"] if immutable else [])
    return {**variant, "properties": properties} | ({"required": required} if required else {})


def node_variants(spec: TaskSpec, receives: bool, options: bool) -> list[JsonSchema]:
    """The arity variants of a call; a workflow node that receives a result may instead
    be `immutable` (Celery's .si()), and then takes its full arguments."""
    if not (options and receives):
        return arity_variants(spec, receives)
    return [with_immutable(v, False) for v in arity_variants(spec, True)] + [
        with_immutable(v, True) for v in arity_variants(spec, False)
    ]


def call_model(spec: TaskSpec, receives: bool, options: bool) -> type[BaseModel]:
    """The model of one task's call, checked by the catalog's own `validate_call`."""
    suffix = ("Node" if options else "") + ("Step" if receives else "Call")
    variants = node_variants(spec, receives, options)
    takes = "the previous result as its first argument, then " if receives else ""

    def add_variants(schema: JsonSchema) -> None:
        schema["anyOf"] = variants

    def check(self: BaseModel) -> BaseModel:
        try:
            validate_call(
                spec.name,
                getattr(self, "args"),  # noqa: B009 (fields of a model made at run time)
                getattr(self, "kwargs"),  # noqa: B009
                receives_parent_result=receives and not getattr(self, "immutable", False),
            )
        except (UnknownTaskError, ArgumentError) as exc:
            raise ValueError(str(exc)) from None
        return self

    fields: dict[str, Any] = {
        "task": (Literal[spec.name], Field(description=spec.summary)),
        "args": (list[Any], Field(default_factory=list)),
        "kwargs": (dict[str, Any], Field(default_factory=dict)),
    }
    if options:
        options_type = Annotated[dict[str, Any], WithJsonSchema(options_schema())]
        fields["options"] = (options_type, Field(default_factory=dict))
        fields["immutable"] = (
            bool,
            Field(
                False,
                description="Keep only this call's own arguments (Celery's .si()).",
                strict=True,
            ),
        )
    model: type[BaseModel] = create_model(
        model_name(spec, suffix),
        __config__=ConfigDict(extra="forbid", json_schema_extra=add_variants),
        __doc__=f"`{spec.name}`: {spec.summary}; takes {takes}{', '.join(spec.parameters)}.",
        __validators__={"_fits_the_catalog": model_validator(mode="after")(check)},  # type: ignore[dict-item]
        **fields,
    )
    return model


def call_union(receives: bool, options: bool) -> Any:
    """A union of every catalog task's call model, discriminated by `task`."""
    models = tuple(call_model(spec, receives, options) for spec in CATALOG.values())
    return Annotated[Union[models], Field(discriminator="task")]  # noqa: UP007


if TYPE_CHECKING:  # built at run time from the catalog; mypy sees what they hold
    TaskCall = Any
    StepCall = Any
    TaskNode = Any
    TaskStepNode = Any
    ChainSteps = tuple[Any, ...]
    CallSteps = tuple[Any, ...]
else:
    TaskCall = call_union(receives=False, options=False)
    StepCall = call_union(receives=True, options=False)
    TaskNode = call_union(receives=False, options=True)
    TaskStepNode = call_union(receives=True, options=True)


def first_then(first: Any, rest: Any) -> Any:
    """A non-empty list whose first item is `first` and every later one `rest`."""

    def schema(_source: Any, handler: Callable[[Any], Any]) -> core_schema.CoreSchema:
        generate = handler.generate_schema  # type: ignore[attr-defined]
        return core_schema.tuple_schema(
            [generate(first), generate(rest)], variadic_item_index=1, min_length=1
        )

    return Annotated[tuple[Any, ...], GetPydanticSchema(schema)]


# The workflow language (celery_harder.workflow.spec) as schemas. A node that receives a
# result passes it on to its first task(s): a chain's first step, every member of a
# group, every task of a chord's header. A chord's body always receives the header's list.
# Depth, size and argument-size limits are not expressible here; they answer 422.


class ChainNode(BaseModel):
    """Steps run in order; each result is the first argument of the next step."""

    model_config = ConfigDict(extra="forbid")

    chain: "ChainSteps"


class ChainStepNode(BaseModel):
    """A chain that receives a result: its first step gets it."""

    model_config = ConfigDict(extra="forbid")

    chain: "list[StepNode]" = Field(min_length=1)


class GroupNode(BaseModel):
    """Members run in parallel; the result is the list of their results."""

    model_config = ConfigDict(extra="forbid")

    group: "list[Node]" = Field(min_length=1)


class GroupStepNode(BaseModel):
    """A group that receives a result: every member gets it."""

    model_config = ConfigDict(extra="forbid")

    group: "list[StepNode]" = Field(min_length=1)


class ChordParts(BaseModel):
    """A header group and the body that gets the list of its results."""

    model_config = ConfigDict(extra="forbid")

    header: "list[Node]" = Field(min_length=1)
    body: "StepNode"


class ChordStepParts(BaseModel):
    """A chord's header and body, the header receiving a result."""

    model_config = ConfigDict(extra="forbid")

    header: "list[StepNode]" = Field(min_length=1)
    body: "StepNode"


class ChordNode(BaseModel):
    """A group whose list of results is the body's first argument."""

    model_config = ConfigDict(extra="forbid")

    chord: ChordParts


class ChordStepNode(BaseModel):
    """A chord that receives a result: every header task gets it."""

    model_config = ConfigDict(extra="forbid")

    chord: ChordStepParts


class Node(RootModel[Union[TaskNode, ChainNode, GroupNode, ChordNode]]):  # noqa: UP007
    """A workflow node: exactly one of task, chain, group, chord (GET /tasks lists tasks)."""


class StepNode(
    RootModel[Union[TaskStepNode, ChainStepNode, GroupStepNode, ChordStepNode]]  # noqa: UP007
):
    """A node whose first task(s) receive the previous result as first argument."""


if not TYPE_CHECKING:
    CallSteps = first_then(TaskCall, StepCall)  # the body of POST /chain
    ChainSteps = first_then(Node, StepNode)
for _model in (ChainNode, ChainStepNode, GroupNode, GroupStepNode, ChordParts, ChordStepParts):
    _model.model_rebuild()
