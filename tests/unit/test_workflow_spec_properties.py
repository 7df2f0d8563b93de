"""T0, Hypothesis: every valid spec compiles with deterministic leaf ids, and every
mutation that breaks one is refused with the path of the node it broke.

The generator follows the spec's argument rule: a task that receives a parent
result (a later chain step, a chord body, or anything inside one) leaves its first
parameter out.
"""

import copy
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from celery import Celery
from celery.canvas import Signature, _chain, _chord, group
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_harder.workflow.compiler import compile_canvas, leaf_task_id, workflow_leaves
from celery_harder.workflow.spec import ROOT, SpecError, parse_workflow

QUEUES = ("celery", "cpu")

Spec = dict[str, Any]
APP = Celery("properties", set_as_current=False)
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
pair = st.tuples(numbers, numbers)
priority = st.fixed_dictionaries({}, optional={"priority": st.integers(0, 9)})


@cache
def leaf(receives: bool) -> st.SearchStrategy[Spec]:
    """A catalog call; without its first parameter when a parent result fills it."""
    if receives:
        return st.one_of(
            st.builds(lambda y, o: {"task": "add", "args": [y], "options": o}, numbers, priority),
            st.builds(lambda y: {"task": "mul", "kwargs": {"y": y}}, numbers),
            st.just({"task": "xsum"}),
        )
    return st.one_of(
        st.builds(lambda xy, o: {"task": "add", "args": list(xy), "options": o}, pair, priority),
        st.builds(lambda xy: {"task": "mul", "kwargs": {"x": xy[0], "y": xy[1]}}, pair),
        st.builds(lambda ns: {"task": "xsum", "args": [ns]}, st.lists(numbers, max_size=4)),
        st.builds(lambda s: {"task": "sleep", "args": [s]}, st.floats(0, 5)),
    )  # fmt: skip


@cache
def node(receives: bool, depth: int) -> st.SearchStrategy[Spec]:
    """A node of at most `depth` levels of chain, group and chord above its leaves."""
    if depth == 0:
        return leaf(receives)
    same, fed = node(receives, depth - 1), node(True, depth - 1)
    members = st.lists(same, min_size=1, max_size=3)
    return st.one_of(
        leaf(receives),
        st.builds(lambda first, rest: {"chain": [first, *rest]}, same, st.lists(fed, max_size=2)),
        st.builds(lambda ms: {"group": ms}, members),
        st.builds(lambda h, b: {"chord": {"header": h, "body": b}}, members, fed),
    )


specs = node(False, 3)
workflow_ids = st.uuids().map(str)


def count_tasks(spec: Any) -> int:
    """Task nodes in a raw spec."""
    if "task" in spec:
        return 1
    if "chord" in spec:
        return sum(map(count_tasks, spec["chord"]["header"])) + count_tasks(spec["chord"]["body"])
    return sum(map(count_tasks, spec.get("chain") or spec.get("group")))


def canvas_ids(sig: Signature) -> Iterator[str]:
    """Task ids of every leaf signature in a compiled canvas."""
    if isinstance(sig, _chord):
        for member in sig.tasks:
            yield from canvas_ids(member)
        yield from canvas_ids(sig.body)
    elif isinstance(sig, (_chain, group)):
        for member in sig.tasks:
            yield from canvas_ids(member)
    else:
        yield sig.id


@SETTINGS
@given(specs, workflow_ids)
def test_any_valid_spec_compiles_with_deterministic_leaf_ids(spec: Spec, workflow_id: str) -> None:
    parsed = parse_workflow(spec)
    leaves = workflow_leaves(workflow_id, parsed)
    assert len(leaves) == count_tasks(spec)
    assert len({lf.path for lf in leaves}) == len(leaves)
    assert len({lf.task_id for lf in leaves}) == len(leaves)
    assert all(lf.task_id == leaf_task_id(workflow_id, lf.path) for lf in leaves)
    # The same spec again, parsed from a copy: the same paths and ids, in the same order.
    assert workflow_leaves(workflow_id, parse_workflow(copy.deepcopy(spec))) == leaves
    compiled = sorted(canvas_ids(compile_canvas(APP, workflow_id, parsed)))
    assert compiled == sorted(lf.task_id for lf in leaves)


def nodes(spec: Any, path: str = ROOT) -> Iterator[tuple[str, Spec]]:
    """Every node of a raw spec with its path, in the parser's notation."""
    yield path, spec
    if "chord" in spec:
        for i, member in enumerate(spec["chord"]["header"]):
            yield from nodes(member, f"{path}.chord.header[{i}]")
        yield from nodes(spec["chord"]["body"], f"{path}.chord.body")
    for kind in ("chain", "group"):
        for i, member in enumerate(spec.get(kind, [])):
            yield from nodes(member, f"{path}.{kind}[{i}]")


Mutation = Callable[[Spec], Any]
ANY_NODE: dict[str, Mutation] = {
    "not an object (number)": lambda n: 0,
    "not an object (string)": lambda n: "add",
    "not an object (list)": lambda n: [n],
    "two kinds": lambda n: (
        {**n, "group": [{"task": "add", "args": [1, 1]}]} if "task" in n else {**n, "task": "add"}
    ),
    "unknown field": lambda n: {**n, "retries": 3},
}
TASK_NODE: dict[str, Mutation] = {
    "unknown task": lambda n: {**n, "task": "no-such-task"},
    "name not a string": lambda n: {**n, "task": 42},
    "args not a list": lambda n: {**n, "args": "1, 2"},
    "unknown argument": lambda n: {**n, "kwargs": {**n.get("kwargs", {}), "zzz": 1}},
    "unknown option": lambda n: {**n, "options": {"exchange": "elsewhere"}},
    "unknown queue": lambda n: {**n, "options": {"queue": "elsewhere"}},
    "queue not a string": lambda n: {**n, "options": {"queue": 3}},
    "option not a number": lambda n: {**n, "options": {"priority": "high"}},
}
LIST_NODE: dict[str, Mutation] = {
    "empty list": lambda n: {k: [] for k in n},
    "members not a list": lambda n: {k: {"task": "add"} for k in n},
}
CHORD_NODE: dict[str, Mutation] = {
    "chord without body": lambda n: {"chord": {"header": n["chord"]["header"]}},
    "chord with empty header": lambda n: {"chord": {**n["chord"], "header": []}},
}


def mutations_for(spec: Spec) -> dict[str, Mutation]:
    """The breaking mutations that apply to a node of this kind."""
    if "task" in spec:
        return {**ANY_NODE, **TASK_NODE}
    if "chord" in spec:
        return {**ANY_NODE, **CHORD_NODE}
    return {**ANY_NODE, **LIST_NODE}


def replace(spec: Spec, target: str, new: Any) -> Any:
    """A copy of `spec` with the node at path `target` replaced by `new`."""
    if target == ROOT:
        return new
    root = copy.deepcopy(spec)
    for path, candidate in nodes(root):
        for kind in ("chain", "group"):
            for i, _ in enumerate(candidate.get(kind, [])):
                if f"{path}.{kind}[{i}]" == target:
                    candidate[kind][i] = new
                    return root
        if "chord" in candidate:
            chord = candidate["chord"]
            for i, _ in enumerate(chord["header"]):
                if f"{path}.chord.header[{i}]" == target:
                    chord["header"][i] = new
                    return root
            if f"{path}.chord.body" == target:
                chord["body"] = new
                return root
    raise AssertionError(f"no node at {target}")


def within(path: str, target: str) -> bool:
    """Whether `path` is `target` or a path below it."""
    return path == target or path.startswith((f"{target}.", f"{target}["))


@SETTINGS
@given(specs, st.data())
def test_any_breaking_mutation_is_refused_with_the_node_path(
    spec: Spec, data: st.DataObject
) -> None:
    target, victim = data.draw(st.sampled_from(list(nodes(spec))), label="node")
    mutations = mutations_for(victim)
    name = data.draw(st.sampled_from(sorted(mutations)), label="mutation")
    broken = replace(spec, target, mutations[name](copy.deepcopy(victim)))
    try:
        parse_workflow(broken, queues=QUEUES)
    except SpecError as exc:
        paths = [issue.path for issue in exc.issues]
    else:
        raise AssertionError(f"{name} at {target} was accepted: {broken}")
    assert paths, name
    # Refused where it was broken, and nowhere else: the rest of the spec is valid.
    assert all(within(p, target) for p in paths), (name, target, paths)
