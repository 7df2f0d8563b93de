"""Compile a parsed spec to a Celery canvas with deterministic task ids."""

import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from celery_harder.catalog import CATALOG
from celery_harder.routing import task_queue
from celery_harder.workflow.spec import ChainNode, ChordNode, GroupNode, Node, TaskNode, leaves

# Fixed namespace: the same workflow id and node path always give the same task id.
TASK_ID_NAMESPACE = uuid.UUID("3f0a5b8e-2c1d-4e6f-9a7b-c8d9e0f1a2b3")


@dataclass(frozen=True)
class Leaf:
    """A task of a workflow: where it is in the spec, what it runs, its Celery id."""

    path: str
    task: str
    task_id: str


def leaf_task_id(workflow_id: str, path: str) -> str:
    """The Celery task id of the leaf at `path` of workflow `workflow_id`."""
    return str(uuid.uuid5(TASK_ID_NAMESPACE, f"{workflow_id}/{path}"))


def may_be_leaf_task_id(task_id: str) -> bool:
    """False for an id no workflow leaf has: leaf ids are UUIDs of version 5, Celery's
    own are version 4 (a caller's own version-5 id is taken for a leaf's)."""
    try:
        return uuid.UUID(task_id).version == 5
    except ValueError:
        return False


def workflow_leaves(workflow_id: str, node: Node) -> list[Leaf]:
    """Every leaf with its deterministic id, in spec order."""
    return [Leaf(t.path, t.task, leaf_task_id(workflow_id, t.path)) for t in leaves(node)]


def leaf_options(node: TaskNode, common: dict[str, Any], default_queue: str) -> dict[str, Any]:
    """One leaf's Celery options: `common`, then the node's own, routed to the leaf's queue."""
    spec = CATALOG.get(node.task)
    queue = task_queue(spec.queue if spec else None, node.options, default_queue)
    return {**common, **dict(node.options), "queue": queue}


def compile_canvas(
    app: Celery,
    workflow_id: str,
    node: Node,
    options: dict[str, Any] | None = None,
    *,
    default_queue: str = "celery",
) -> Signature:
    """The Celery canvas for `node`; `options` (expires) apply to every task.

    Each task goes to its node's `options.queue`, else its catalog queue, else `default_queue`.
    """
    common = options or {}

    def build(n: Node) -> Signature:
        if isinstance(n, TaskNode):
            return app.signature(
                n.task,
                args=list(n.args),
                kwargs=dict(n.kwargs),
                task_id=leaf_task_id(workflow_id, n.path),
                immutable=n.immutable,
                **leaf_options(n, common, default_queue),
            )
        if isinstance(n, ChainNode):
            return chain(*(build(s) for s in n.steps))
        if isinstance(n, GroupNode):
            return group(*(build(m) for m in n.members))
        assert isinstance(n, ChordNode)
        return chord([build(h) for h in n.header], build(n.body))

    return build(node)
