"""Workflow spec: parse a JSON tree of task/chain/group/chord nodes, with limits.

A Node is exactly one of
  {"task": name, "args": [...], "kwargs": {...}, "options": {...}, "immutable": bool}
  {"chain": [Node, ...]}   {"group": [Node, ...]}   {"chord": {"header": [Node, ...], "body": Node}}
Every error names the path of the node it is about, e.g. `workflow.chord.header[3].chain[1]`.
"""

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from celery_harder.catalog import ArgumentError, UnknownTaskError, validate_call
from celery_harder.routing import UnknownQueueError, check_queue

KINDS = ("task", "chain", "group", "chord")
TASK_FIELDS = frozenset({"task", "args", "kwargs", "options", "immutable"})
# Per-task Celery options a spec may set; anything else (exchange, routing_key) stays ours.
# `queue` must name a configured queue (CELERY_HARDER_QUEUES), checked by the parser.
ALLOWED_OPTIONS: dict[str, Any] = {
    "priority": int,
    "time_limit": int | float,
    "soft_time_limit": int | float,
    "queue": str,
}
ROOT = "workflow"


@dataclass(frozen=True)
class Limits:
    """Bounds on one workflow's size."""

    max_leaves: int = 1000
    max_depth: int = 16
    max_argument_bytes: int = 262_144


@dataclass(frozen=True)
class TaskNode:
    """A call of one catalog task; `path` is where it sits in the spec."""

    path: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    # Celery's .si(): the call keeps its own arguments and is not given the result
    # before it (a chain's previous step, a chord's header).
    immutable: bool = False


@dataclass(frozen=True)
class ChainNode:
    """Steps run one after another; each result is the first argument of the next."""

    path: str
    steps: tuple["Node", ...]


@dataclass(frozen=True)
class GroupNode:
    """Members run in parallel; the result is the list of their results, in order."""

    path: str
    members: tuple["Node", ...]


@dataclass(frozen=True)
class ChordNode:
    """A group whose list of results is passed to the body."""

    path: str
    header: tuple["Node", ...]
    body: "Node"


Node = Union[TaskNode, ChainNode, GroupNode, ChordNode]  # noqa: UP007 (forward references)


@dataclass(frozen=True)
class SpecIssue:
    """One problem with a spec, at a node path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """A spec that cannot run; `issues` lists every problem found with its path."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = issues


class _Parser:
    def __init__(self, limits: Limits, check_calls: bool, queues: Collection[str] | None) -> None:
        self.limits = limits
        self.check_calls = check_calls
        self.queues = queues
        self.leaves = 0
        self.issues: list[SpecIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(SpecIssue(path, message))

    def node(self, raw: Any, path: str, depth: int, receives: bool) -> Node | None:
        if depth > self.limits.max_depth:
            self.fail(path, f"nested deeper than {self.limits.max_depth} levels")
            return None
        if not isinstance(raw, dict):
            self.fail(path, f"a node must be an object with one of {', '.join(KINDS)}")
            return None
        kinds = [k for k in KINDS if k in raw]
        if len(kinds) != 1:
            found = f"found {', '.join(kinds)}" if kinds else "found none"
            self.fail(path, f"a node needs exactly one of {', '.join(KINDS)}; {found}")
            return None
        kind = kinds[0]
        if kind == "task":
            return self.task(raw, path, receives)
        extra = sorted(set(raw) - {kind})
        if extra:
            self.fail(path, f"unexpected field(s) {', '.join(extra)} beside {kind!r}")
            return None
        if kind == "chord":
            return self.chord(raw["chord"], f"{path}.chord", depth, receives)
        items = self.node_list(raw[kind], f"{path}.{kind}")
        if items is None:
            return None
        if kind == "chain":
            # Only the first step gets what the chain receives; later steps get the previous result.
            steps = [
                self.node(item, f"{path}.chain[{i}]", depth + 1, receives or i > 0)
                for i, item in enumerate(items)
            ]
            return ChainNode(path, tuple(steps)) if None not in steps else None  # type: ignore[arg-type]
        members = [
            self.node(item, f"{path}.group[{i}]", depth + 1, receives)
            for i, item in enumerate(items)
        ]
        return GroupNode(path, tuple(members)) if None not in members else None  # type: ignore[arg-type]

    def node_list(self, raw: Any, path: str) -> list[Any] | None:
        if not isinstance(raw, list):
            self.fail(path, "must be a list of nodes")
            return None
        if not raw:
            self.fail(path, "must not be empty")
            return None
        return raw

    def chord(self, raw: Any, path: str, depth: int, receives: bool) -> Node | None:
        if not isinstance(raw, dict) or set(raw) != {"header", "body"}:
            self.fail(path, "a chord is an object with exactly 'header' and 'body'")
            return None
        items = self.node_list(raw["header"], f"{path}.header")
        if items is None:
            return None
        header = [
            self.node(item, f"{path}.header[{i}]", depth + 1, receives)
            for i, item in enumerate(items)
        ]
        body = self.node(raw["body"], f"{path}.body", depth + 1, True)
        if None in header or body is None:
            return None
        return ChordNode(path, tuple(header), body)  # type: ignore[arg-type]

    def task(self, raw: dict[str, Any], path: str, receives: bool) -> Node | None:
        extra = sorted(set(raw) - TASK_FIELDS)
        if extra:
            self.fail(path, f"unexpected field(s) {', '.join(extra)} in a task node")
            return None
        self.leaves += 1
        if self.leaves == self.limits.max_leaves + 1:
            self.fail(path, f"more than {self.limits.max_leaves} tasks in one workflow")
        name, args, kwargs = raw["task"], raw.get("args", []), raw.get("kwargs", {})
        options, immutable = raw.get("options", {}), raw.get("immutable", False)
        if not isinstance(name, str):
            self.fail(f"{path}.task", "must be a task name")
            return None
        if not isinstance(immutable, bool):
            self.fail(f"{path}.immutable", "must be true or false")
            return None
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            self.fail(path, "args must be a list and kwargs an object")
            return None
        if not self.options_ok(options, path):
            return None
        try:
            size = len(json.dumps([args, kwargs], allow_nan=False))
        except ValueError:
            self.fail(path, "arguments must be finite JSON numbers, strings, lists and objects")
            return None
        if size > self.limits.max_argument_bytes:
            self.fail(
                path, f"arguments are {size} bytes; the limit is {self.limits.max_argument_bytes}"
            )
            return None
        try:
            if self.check_calls:
                validate_call(name, args, kwargs, receives_parent_result=receives and not immutable)
        except (UnknownTaskError, ArgumentError) as exc:
            self.fail(path, str(exc))
            return None
        return TaskNode(path, name, tuple(args), dict(kwargs), dict(options), immutable)

    def options_ok(self, options: Any, path: str) -> bool:
        if not isinstance(options, dict):
            self.fail(f"{path}.options", "must be an object")
            return False
        for key, value in options.items():
            expected = ALLOWED_OPTIONS.get(key)
            if expected is None:
                self.fail(
                    f"{path}.options",
                    f"unknown option {key!r}; allowed: {', '.join(ALLOWED_OPTIONS)}",
                )
                return False
            if isinstance(value, bool) or not isinstance(value, expected):
                kind = "a queue name" if expected is str else "a number"
                self.fail(f"{path}.options.{key}", f"must be {kind}")
                return False
            if key == "queue" and self.queues is not None:
                try:
                    check_queue(value, self.queues)
                except UnknownQueueError as exc:
                    self.fail(f"{path}.options.queue", str(exc))
                    return False
        return True


def parse_workflow(
    raw: Any,
    limits: Limits | None = None,
    root: str = ROOT,
    *,
    check_calls: bool = True,
    queues: Collection[str] | None = None,
) -> Node:
    """The parsed tree of a raw spec, or SpecError with every issue and its path.

    `check_calls` validates task names and arguments against the catalog; `queues`
    (None: any name) are the queues an `options.queue` may name.
    """
    parser = _Parser(limits or Limits(), check_calls, queues)
    node = parser.node(raw, root, 1, False)
    if parser.issues or node is None:
        raise SpecError(parser.issues or [SpecIssue(root, "invalid workflow")])
    return node


def leaves(node: Node) -> Iterator[TaskNode]:
    """Task nodes in spec order."""
    if isinstance(node, TaskNode):
        yield node
    elif isinstance(node, ChordNode):
        for child in node.header:
            yield from leaves(child)
        yield from leaves(node.body)
    else:
        for child in node.steps if isinstance(node, ChainNode) else node.members:
            yield from leaves(child)
