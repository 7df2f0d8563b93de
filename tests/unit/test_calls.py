"""T0: the catalog-derived call schemas accept exactly what the catalog's validate_call accepts."""

from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter, ValidationError

from celery_harder.catalog import CATALOG, ArgumentError, validate_call
from celery_harder.workflow.spec import ALLOWED_OPTIONS
from celery_harder_api.calls import StepCall, TaskCall, arity_variants, model_name, options_schema

CALL_SCHEMA = TypeAdapter(TaskCall).json_schema()
STEP_SCHEMA = TypeAdapter(StepCall).json_schema()

# (task, args, kwargs): right and wrong calls of every shape the binding rules allow.
CASES: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("add", [2, 3], {}),
    ("add", [2], {"y": 3}),
    ("add", [], {"x": 2, "y": 3.5}),
    ("add", [2], {}),
    ("add", [], {"y": 3}),
    ("add", [2, 3, 4], {}),
    ("add", [2], {"x": 3}),
    ("add", [2, 3], {"z": 1}),
    ("add", [2, False], {}),
    ("add", [True, 3], {}),
    ("add", ["2", 3], {}),
    ("add", [None, 3], {}),
    ("mul", [4, 6], {}),
    ("xsum", [[1, 2, 3]], {}),
    ("xsum", [], {"numbers": [1, 2.5]}),
    ("xsum", [[1, True]], {}),
    ("xsum", [], {}),
    ("request_info", [None], {}),
    ("request_info", [], {"data": {"a": [1]}}),
    ("request_info", [], {}),
    ("sleep", [3], {}),
    ("sleep", [], {"seconds": 0.5}),
    ("sleep", [-1], {}),
    ("sleep", [3601], {}),
    ("sleep", [True], {}),
    ("fail", [], {}),
    ("fail", ["boom"], {}),
    ("fail", [], {"message": "x" * 1001}),
    ("documents.split", ["a\nb"], {}),
    ("documents.split", ["a\nb", 1], {}),
    ("documents.split", ["a\nb"], {"lines_per_chunk": 0}),
    ("documents.split", ["a\nb"], {"lines_per_chunk": 2.0}),
    ("documents.analyse", ["the fox"], {}),
    ("documents.merge", [[{"lines": 1}]], {}),
    ("documents.merge", [[]], {}),
    ("documents.write_report", [{"lines": 1}], {"name": "notes"}),
    ("documents.write_report", [{"lines": 1}, "notes", 5], {}),
    ("documents.write_report", [{"lines": 1}], {"name": "../evil"}),
    ("documents.write_report", [{}, None, 101], {}),
]


def accepted_by_catalog(task: str, args: list[Any], kwargs: dict[str, Any], receives: bool) -> bool:
    try:
        validate_call(task, args, kwargs, receives_parent_result=receives)
    except ArgumentError:
        return False
    return True


def valid_by_schema(schema: dict[str, Any], call: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(call)


@pytest.mark.parametrize(("task", "args", "kwargs"), CASES)
@pytest.mark.parametrize("receives", [False, True], ids=["call", "step"])
def test_the_schema_and_the_catalog_agree(
    task: str, args: list[Any], kwargs: dict[str, Any], receives: bool
) -> None:
    call = {"task": task, "args": args, "kwargs": kwargs}
    schema = STEP_SCHEMA if receives else CALL_SCHEMA
    expected = accepted_by_catalog(task, args, kwargs, receives)
    assert valid_by_schema(schema, call) is expected
    try:
        TypeAdapter(StepCall if receives else TaskCall).validate_python(call)
        validated = True
    except ValidationError:
        validated = False
    assert validated is expected


def test_some_cases_pass_and_some_fail_in_both_forms() -> None:
    for receives in (False, True):
        outcomes = {accepted_by_catalog(t, a, k, receives) for t, a, k in CASES}
        assert outcomes == {True, False}


def test_an_unknown_task_or_field_fits_no_variant() -> None:
    assert not valid_by_schema(CALL_SCHEMA, {"task": "nope"})
    assert not valid_by_schema(CALL_SCHEMA, {"task": "fail", "queue": "x"})
    assert not valid_by_schema(CALL_SCHEMA, {"task": "fail", "options": {}})


def test_a_step_must_not_name_the_argument_the_previous_result_fills() -> None:
    assert valid_by_schema(STEP_SCHEMA, {"task": "add", "args": [4]})
    assert not valid_by_schema(STEP_SCHEMA, {"task": "add", "kwargs": {"x": 1, "y": 4}})
    with pytest.raises(ArgumentError, match="previous step's result"):
        validate_call("add", [], {"x": 1, "y": 4}, receives_parent_result=True)


def test_one_variant_per_count_of_positional_arguments() -> None:
    for spec in CATALOG.values():
        assert len(arity_variants(spec, receives=False)) == len(spec.parameters) + 1
        assert len(arity_variants(spec, receives=True)) == max(len(spec.parameters), 1)
    assert model_name(CATALOG["documents.write_report"], "Call") == "DocumentsWriteReportCall"


@pytest.mark.parametrize(
    ("value", "ok"), [(2, True), (2.0, True), (2.5, False), (True, False), ("2", False)]
)
def test_integers_are_json_schema_integers(value: Any, ok: bool) -> None:
    assert accepted_by_catalog("documents.split", ["a"], {"lines_per_chunk": value}, False) is ok


def test_node_options_schema_follows_allowed_options_with_a_queue_enum() -> None:
    """Every allowed option is in the schema; `queue` names only the configured queues."""
    schema = options_schema(("celery", "cpu"))
    assert set(schema["properties"]) == set(ALLOWED_OPTIONS)
    assert schema["properties"]["queue"]["enum"] == ["celery", "cpu"]
    assert valid_by_schema(schema, {"queue": "cpu", "priority": 3})
    assert not valid_by_schema(schema, {"queue": "gpu"})
    assert options_schema()["properties"]["queue"]["enum"] == ["celery"]
