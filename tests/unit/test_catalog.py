"""T0: the catalog validates calls by name, position and keyword."""

import math

import pytest

from celery_harder.catalog import CATALOG, ArgumentError, UnknownTaskError, validate_call


def test_catalog_names_match_the_contract() -> None:
    assert {"add", "mul", "xsum", "request_info", "sleep", "fail"} <= set(CATALOG)
    assert all(n.startswith("documents.") for n in CATALOG if "." in n)


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("add", [1, 2], {}),
        ("add", [1], {"y": 2}),
        ("xsum", [[1, 2.5]], {}),
        ("request_info", [], {"data": {"any": ["thing"]}}),
        ("sleep", [0.5], {}),
        ("fail", [], {}),
    ],
)
def test_good_calls_pass(name: str, args: list, kwargs: dict) -> None:
    assert validate_call(name, args, kwargs).name == name


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "fragment"),
    [
        ("add", ["a", 2], {}, "x"),
        ("add", [1], {}, "y: Field required"),
        ("add", [1, 2, 3], {}, "at most 2 positional"),
        ("add", [1], {"x": 2}, "given both"),
        ("add", [math.nan, 1], {}, "finite"),
        ("add", [1, math.inf], {}, "finite"),
        ("add", [1, 2], {"z": 3}, "Extra inputs"),
        ("sleep", [-1], {}, "greater than or equal"),
        ("documents.write_report", [{}], {"name": "../x"}, "pattern"),
    ],
)
def test_bad_calls_name_the_argument(name: str, args: list, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        validate_call(name, args, kwargs)
    assert fragment in str(caught.value)


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(UnknownTaskError, match="known tasks: add"):
        validate_call("nope")


def test_parent_result_fills_the_first_parameter() -> None:
    validate_call("add", [4], receives_parent_result=True)
    validate_call("xsum", [], receives_parent_result=True)
    with pytest.raises(ArgumentError):
        validate_call("add", [], receives_parent_result=True)  # y is still missing
    with pytest.raises(ArgumentError):
        validate_call("add", [1, 2], receives_parent_result=True)  # one too many
