"""Workflows: the seed's /chain, /group, /chord, the generic /workflows, and /documents."""

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from celery_harder.workflow.engine import Submitted, WorkflowEngine, status_document
from celery_harder.workflow.status import WorkflowStatus
from celery_harder.workflow.templates import (
    chain_spec,
    chord_spec,
    document_pipeline_spec,
    group_spec,
)
from celery_harder_api.blocking import off_loop
from celery_harder_api.dependencies import AppSettings, CanRead, CanSubmit
from celery_harder_api.errors import documented
from celery_harder_api.metrics import root_kind
from celery_harder_api.schemas import (
    ChainRequest,
    ChordRequest,
    DocumentRequest,
    GroupRequest,
    LeafInfo,
    WorkflowRequest,
    WorkflowStatusBody,
    WorkflowSubmitted,
)

router = APIRouter(tags=["workflows"])
SUBMIT_RESPONSES = documented(401, 403, 413, 422, 503)
READ_RESPONSES = documented(401, 403, 404, 422, 503)
CANCEL_RESPONSES = documented(401, 403, 404, 413, 422, 503)


async def get_engine(request: Request) -> WorkflowEngine:
    engine: WorkflowEngine = request.app.state.engine
    return engine


Engine = Annotated[WorkflowEngine, Depends(get_engine)]


def submitted_body(submitted: Submitted) -> WorkflowSubmitted:
    return WorkflowSubmitted(
        id=submitted.id,
        status_url=f"/workflows/{submitted.id}",
        events_url=f"/workflows/{submitted.id}/events",
        tasks=[LeafInfo(path=lf.path, task=lf.task, task_id=lf.task_id) for lf in submitted.leaves],
    )


async def submit(
    request: Request,
    engine: WorkflowEngine,
    settings: AppSettings,
    spec: Any,
    timeout_seconds: int | None = None,
) -> WorkflowSubmitted:
    """Validate and dispatch off the event loop (SpecError becomes a 422), and count it."""
    submitted = await off_loop(
        lambda: engine.submit(spec, timeout_seconds=timeout_seconds),
        timeout=settings.redis_timeout + 5,
    )
    request.app.state.metrics.workflows_submitted.labels(kind=root_kind(spec)).inc()
    return submitted_body(submitted)


async def read_status(engine: WorkflowEngine, settings: AppSettings, wid: str) -> WorkflowStatus:
    found = await off_loop(engine.status, wid, timeout=settings.redis_timeout + 5)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"workflow {wid} does not exist")
    return found


@router.post("/chain", status_code=202, dependencies=[CanSubmit], responses=SUBMIT_RESPONSES)
async def post_chain(
    body: ChainRequest, request: Request, engine: Engine, settings: AppSettings
) -> WorkflowSubmitted:
    """Run steps in order (the seed's chain)."""
    spec = chain_spec([c.model_dump() for c in body.steps])
    return await submit(request, engine, settings, spec)


@router.post("/group", status_code=202, dependencies=[CanSubmit], responses=SUBMIT_RESPONSES)
async def post_group(
    body: GroupRequest, request: Request, engine: Engine, settings: AppSettings
) -> WorkflowSubmitted:
    """Run tasks in parallel (the seed's group)."""
    spec = group_spec([c.model_dump() for c in body.tasks])
    return await submit(request, engine, settings, spec)


@router.post("/chord", status_code=202, dependencies=[CanSubmit], responses=SUBMIT_RESPONSES)
async def post_chord(
    body: ChordRequest, request: Request, engine: Engine, settings: AppSettings
) -> WorkflowSubmitted:
    """Run a header group, then the body on its results (the seed's chord)."""
    spec = chord_spec([c.model_dump() for c in body.header], body.body.model_dump())
    return await submit(request, engine, settings, spec)


@router.post("/workflows", status_code=202, dependencies=[CanSubmit], responses=SUBMIT_RESPONSES)
async def post_workflow(
    body: WorkflowRequest, request: Request, engine: Engine, settings: AppSettings
) -> WorkflowSubmitted:
    """Run any workflow spec, optionally with a deadline."""
    return await submit(request, engine, settings, body.workflow, body.timeout_seconds)


@router.post("/documents", status_code=202, dependencies=[CanSubmit], responses=SUBMIT_RESPONSES)
async def post_document(
    body: DocumentRequest, request: Request, engine: Engine, settings: AppSettings
) -> WorkflowSubmitted:
    """Analyse a text in chunks and write its report (a ready-made workflow)."""
    spec = document_pipeline_spec(body.text, body.name, body.lines_per_chunk, body.top)
    return await submit(request, engine, settings, spec)


@router.get("/workflows/{workflow_id}", dependencies=[CanRead], responses=READ_RESPONSES)
async def get_workflow(
    workflow_id: str, engine: Engine, settings: AppSettings
) -> WorkflowStatusBody:
    """Phase, progress, per-node states and the result."""
    doc = status_document(await read_status(engine, settings, workflow_id))
    return WorkflowStatusBody.model_validate(doc)


@router.delete(
    "/workflows/{workflow_id}",
    status_code=202,
    dependencies=[CanSubmit],
    responses=CANCEL_RESPONSES,
)
async def cancel_workflow(
    workflow_id: str,
    engine: Engine,
    settings: AppSettings,
    terminate: Annotated[bool, Query(description="Also kill tasks already running.")] = False,
) -> WorkflowStatusBody:
    """Cancel: nothing further starts; running tasks finish unless `terminate`."""
    found = await off_loop(
        lambda: engine.cancel(workflow_id, terminate=terminate), timeout=settings.redis_timeout + 5
    )
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"workflow {workflow_id} does not exist")
    return WorkflowStatusBody.model_validate(status_document(found))


def change_id(doc: dict[str, Any]) -> str:
    """An event id derived from what makes a status worth sending: phase, progress, nodes.

    Derived rather than counted, so that a reconnect (Last-Event-ID) is understood by
    any API replica without keeping state: the status it names is not sent again.
    """
    key = [doc["phase"], doc["progress"], [(n["state"], n["phase"]) for n in doc["nodes"]]]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


async def existing_status(
    workflow_id: str, engine: Engine, settings: AppSettings
) -> WorkflowStatus:
    """The workflow's status, or 404 before any event is sent."""
    return await read_status(engine, settings, workflow_id)


@router.get(
    "/workflows/{workflow_id}/events",
    response_class=EventSourceResponse,
    dependencies=[CanRead],
    responses=documented(401, 403, 404, 422, 503, json_media=True),
)
async def workflow_events(
    workflow_id: str,
    first: Annotated[WorkflowStatus, Depends(existing_status)],
    engine: Engine,
    settings: AppSettings,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: one `status` event per change, until the workflow finishes.

    Each event's `id` names the status it carries; a client that reconnects with
    `Last-Event-ID` gets only what changed since. A `: ping` comment every 15 s keeps
    proxies with an idle timeout from cutting a stream that waits on a long task. A
    stream ends after CELERY_HARDER_SSE_MAX_SECONDS even if the workflow runs on;
    EventSource reconnects by itself and misses nothing.
    """
    current: WorkflowStatus | None = first
    last = last_event_id
    # Bounded, so that no connection (a forgotten client, a fuzzer) is held for hours.
    ends = time.monotonic() + settings.sse_max_seconds
    while current is not None:
        doc = status_document(current)
        event_id = change_id(doc)
        if event_id != last:
            last = event_id
            yield ServerSentEvent(data=doc, event="status", id=event_id)
        if current.finished or time.monotonic() >= ends:
            return
        await asyncio.sleep(settings.workflow_poll_interval)  # the poll period
        current = await off_loop(engine.status, workflow_id, timeout=settings.redis_timeout + 5)
