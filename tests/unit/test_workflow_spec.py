"""T0: the spec language: parsing, limits, paths in errors, deterministic leaf ids."""

from typing import Any

import pytest
from celery import Celery

from celery_harder.workflow.compiler import compile_canvas, leaf_task_id, workflow_leaves
from celery_harder.workflow.spec import Limits, SpecError, parse_workflow
from celery_harder.workflow.templates import document_pipeline_spec


def add(*args: Any) -> dict[str, Any]:
    return {"task": "add", "args": list(args)}


NESTED = {
    "chord": {
        "header": [
            {"chain": [add(1, 1), {"task": "mul", "args": [2]}]},
            {"group": [add(1, 2), add(3, 4)]},
        ],
        "body": {"task": "xsum"},
    }
}


QUEUES = ("celery", "cpu")


def issues(raw: Any, limits: Limits | None = None) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_workflow(raw, limits, queues=QUEUES)
    return [str(i) for i in caught.value.issues]


def test_nested_spec_parses_with_paths() -> None:
    leaves = workflow_leaves("wf", parse_workflow(NESTED))
    assert [lf.path for lf in leaves] == [
        "workflow.chord.header[0].chain[0]",
        "workflow.chord.header[0].chain[1]",
        "workflow.chord.header[1].group[0]",
        "workflow.chord.header[1].group[1]",
        "workflow.chord.body",
    ]


def test_leaf_ids_are_deterministic_and_distinct() -> None:
    first = workflow_leaves("wf", parse_workflow(NESTED))
    again = workflow_leaves("wf", parse_workflow(NESTED))
    other = workflow_leaves("wf2", parse_workflow(NESTED))
    assert first == again
    assert len({lf.task_id for lf in first}) == len(first)
    assert not {lf.task_id for lf in first} & {lf.task_id for lf in other}
    assert first[0].task_id == leaf_task_id("wf", "workflow.chord.header[0].chain[0]")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"chain": [add(1, 1), {"task": "nope"}]}, "workflow.chain[1]: unknown task 'nope'"),
        ({"group": [add(1, "x")]}, "workflow.group[0]: invalid arguments for 'add': y"),
        ({"task": "add", "args": [1, 2], "chain": []}, "workflow: a node needs exactly one"),
        ({"group": []}, "workflow.group: must not be empty"),
        ({"chord": {"header": [add(1, 1)]}}, "workflow.chord: a chord is an object with exactly"),
        ({"chain": [add(1, 1), add(1, 2)]}, "workflow.chain[1]: invalid arguments for 'add'"),
        ({"chord": {"header": [add(1, 1)], "body": add(1, 1)}}, "workflow.chord.body"),
        # `queue` is an option now (issue 14); routing fields beside it stay the platform's.
        (
            {"task": "add", "args": [1, 2], "options": {"exchange": "x"}},
            "unknown option 'exchange'",
        ),
        (
            {"chain": [add(1, 1), {"task": "add", "args": [1], "options": {"queue": "gpu"}}]},
            "workflow.chain[1].options.queue: unknown queue 'gpu'; configured queues: celery, cpu",
        ),
        (
            {"task": "add", "args": [1, 2], "options": {"queue": 5}},
            "options.queue: must be a queue",
        ),
        ({"task": "add", "args": [1, 2], "retries": 3}, "unexpected field(s) retries"),
        ("add", "workflow: a node must be an object"),
    ],
)
def test_errors_name_the_node_path(raw: Any, expected: str) -> None:
    assert any(expected in message for message in issues(raw)), issues(raw)


def test_later_chain_steps_take_the_previous_result() -> None:
    parse_workflow({"chain": [add(2, 2), add(4), {"task": "mul", "args": [3]}]})
    parse_workflow({"chain": [add(1, 1), {"group": [add(1), add(2)]}, {"task": "xsum"}]})


def test_limits() -> None:
    many = {"group": [add(i, i) for i in range(11)]}
    assert issues(many, Limits(max_leaves=10)) == [
        "workflow.group[10]: more than 10 tasks in one workflow"
    ]
    deep: dict[str, Any] = add(1, 1)
    for _ in range(5):
        deep = {"chain": [deep]}
    assert "nested deeper than 4 levels" in issues(deep, Limits(max_depth=4))[0]
    big = {"task": "request_info", "args": ["x" * 2000]}
    assert "the limit is 1000" in issues(big, Limits(max_argument_bytes=1000))[0]


def test_every_issue_is_reported() -> None:
    found = issues({"group": [{"task": "nope"}, add("a", 1), {"chain": []}]})
    assert [m.split(":")[0] for m in found] == [
        "workflow.group[0]",
        "workflow.group[1]",
        "workflow.group[2].chain",
    ]


def test_document_pipeline_spec_is_valid() -> None:
    spec = document_pipeline_spec("a b\nc d\ne\n", "notes", lines_per_chunk=1)
    tree = parse_workflow(spec)
    tasks = [lf.task for lf in workflow_leaves("w", tree)]
    assert tasks == ["documents.analyse"] * 3 + ["documents.merge", "documents.write_report"]


def test_an_immutable_step_keeps_its_own_arguments() -> None:
    """Celery's .si(): the step is not given the previous result, so it takes full args."""
    spec = {"chain": [add(2, 2), {"task": "add", "args": [10, 20], "immutable": True}]}
    tree = parse_workflow(spec)
    app = Celery(set_as_current=False)
    canvas = compile_canvas(app, "wf", tree)
    first, second = canvas.tasks
    assert (first.immutable, second.immutable) == (False, True)
    assert second.args == (10, 20)
    # Without it, the step would get 4 as a third argument: refused at its path.
    mutable = {"chain": [add(2, 2), add(10, 20)]}
    assert any(m.startswith("workflow.chain[1]: invalid arguments") for m in issues(mutable))
    # A chord body that ignores the header's results.
    body = {"task": "add", "args": [1, 2], "immutable": True}
    parse_workflow({"chord": {"header": [add(1, 1)], "body": body}})
    assert issues({"task": "add", "args": [1, 2], "immutable": "yes"}) == [
        "workflow.immutable: must be true or false"
    ]


def test_each_leaf_goes_to_its_node_queue_else_the_default() -> None:
    """`options.queue` routes one node; the others keep the default queue."""
    spec = {
        "chord": {
            "header": [add(1, 1), {"task": "add", "args": [2, 2], "options": {"queue": "cpu"}}],
            "body": {"task": "xsum", "options": {"queue": "cpu", "priority": 6}},
        }
    }
    tree = parse_workflow(spec, queues=QUEUES)
    canvas = compile_canvas(Celery(set_as_current=False), "wf", tree, default_queue="jobs")
    header = canvas.tasks
    assert [t.options["queue"] for t in header] == ["jobs", "cpu"]
    assert (canvas.body.options["queue"], canvas.body.options["priority"]) == ("cpu", 6)


def test_queue_names_are_not_checked_without_a_queue_list() -> None:
    """A stored record is re-parsed without the list: its queues were checked at submit."""
    parse_workflow({"task": "add", "args": [1, 2], "options": {"queue": "gone"}})
