"""T0: planning a workflow validates it and names its leaves without touching Redis."""

from collections.abc import Iterator

import pytest

from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder.workflow.spec import SpecError

# Nothing listens on port 1: a plan that touched Redis would fail with a connection error.
NOWHERE = "redis://127.0.0.1:1/0"
CHAIN = {"chain": [{"task": "add", "args": [1, 1]}, {"task": "mul", "args": [2]}]}


@pytest.fixture(scope="module")
def engine() -> Iterator[WorkflowEngine]:
    client = create_task_client(Settings(broker_url=NOWHERE, result_backend=NOWHERE))
    yield WorkflowEngine(client)
    client.app.close()


def test_a_plan_names_the_leaves_the_dispatch_will_send(engine: WorkflowEngine) -> None:
    planned = engine.plan(CHAIN, workflow_id="wf-1")
    assert planned.id == "wf-1" and planned.spec == CHAIN
    assert [leaf.path for leaf in planned.leaves] == ["workflow.chain[0]", "workflow.chain[1]"]
    # The ids follow from the workflow id: the operator listens for them before the send.
    again = engine.plan(CHAIN, workflow_id="wf-1")
    assert [leaf.task_id for leaf in again.leaves] == [leaf.task_id for leaf in planned.leaves]
    other = engine.plan(CHAIN, workflow_id="wf-2")
    assert {leaf.task_id for leaf in other.leaves}.isdisjoint(
        leaf.task_id for leaf in planned.leaves
    )


def test_a_bad_workflow_is_refused_by_the_plan(engine: WorkflowEngine) -> None:
    with pytest.raises(SpecError, match="not_a_task"):
        engine.plan({"task": "not_a_task"}, workflow_id="wf-3")


def test_a_plan_without_an_id_gets_a_fresh_one(engine: WorkflowEngine) -> None:
    assert engine.plan(CHAIN).id != engine.plan(CHAIN).id
