"""The seed's task endpoints, a generic submission by name, results and the catalog."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, status

from celery_harder import catalog
from celery_harder.async_client import AsyncTaskClient
from celery_harder.catalog import AddArgs, RequestInfoArgs, TaskSpec
from celery_harder_api.calls import TaskCall
from celery_harder_api.dependencies import CanRead, CanSubmit
from celery_harder_api.errors import documented
from celery_harder_api.schemas import CatalogEntry, TaskResult, TaskSubmitted, catalog_entries

router = APIRouter(tags=["tasks"])
SUBMIT_RESPONSES = documented(401, 403, 413, 422, 503)
TASK_CALL_EXAMPLES = {
    "add": {"summary": "add(2, 3)", "value": {"task": "add", "args": [2, 3]}},
    "sleep": {
        "summary": "sleep(seconds=10)",
        "value": {"task": "sleep", "kwargs": {"seconds": 10}},
    },
}


def example_of(spec: TaskSpec) -> dict[str, Any]:
    """An OpenAPI example body taken from the catalog entry."""
    return {"default": {"summary": spec.summary, "value": dict(spec.example_kwargs)}}


async def submit(
    request: Request,
    name: str,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
) -> TaskSubmitted:
    """Send one catalog task (one Redis round trip, on the event loop) and count it.

    The client comes from app.state rather than a dependency: each dependency FastAPI
    resolves costs more than the rest of the route.
    """
    client: AsyncTaskClient = request.app.state.async_client
    task_id = await client.submit(name, args, kwargs)
    request.app.state.metrics.tasks_submitted.labels(task=name).inc()
    return TaskSubmitted(task_id=task_id)


@router.post(
    "/add",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[CanSubmit],
    responses=SUBMIT_RESPONSES,
)
async def add(
    body: Annotated[AddArgs, Body(openapi_examples=example_of(catalog.ADD))],
    request: Request,
) -> TaskSubmitted:
    """Queue `add(x, y)`."""
    return await submit(request, catalog.ADD.name, [body.x, body.y])


@router.post(
    "/test-request-info",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[CanSubmit],
    responses=SUBMIT_RESPONSES,
)
async def test_request_info(
    body: Annotated[RequestInfoArgs, Body(openapi_examples=example_of(catalog.REQUEST_INFO))],
    request: Request,
) -> TaskSubmitted:
    """Queue `request_info(data)`; its result shows what `self.request` held."""
    return await submit(request, catalog.REQUEST_INFO.name, kwargs={"data": body.data})


@router.post(
    "/tasks",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[CanSubmit],
    responses=SUBMIT_RESPONSES,
)
async def submit_call(
    body: Annotated[TaskCall, Body(openapi_examples=TASK_CALL_EXAMPLES)],
    request: Request,
) -> TaskSubmitted:
    """Queue any catalog task by name."""
    return await submit(request, body.task, body.args, body.kwargs)


@router.get("/tasks", dependencies=[CanRead], responses=documented(401, 403))
async def list_tasks() -> list[CatalogEntry]:
    """The task catalog: names, parameters, argument schemas and examples."""
    return catalog_entries()


@router.get(
    "/result/{task_id}", dependencies=[CanRead], responses=documented(401, 403, 404, 422, 503)
)
async def result(task_id: str, request: Request) -> TaskResult:
    """A task's state, result, progress meta and error."""
    client: AsyncTaskClient = request.app.state.async_client
    found = await client.status(task_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"task {task_id} was never issued")
    return TaskResult.from_status(found)
