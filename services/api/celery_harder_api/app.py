"""The FastAPI application factory: `uvicorn celery_harder_api.app:create_app --factory`."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from celery_harder import __version__
from celery_harder.async_client import AsyncTaskClient
from celery_harder.settings import Settings, get_settings
from celery_harder.task_client import BrokerUnavailable, create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder.workflow.spec import SpecError
from celery_harder_api.auth import AuthPolicy, policy_from
from celery_harder_api.blocking import off_loop
from celery_harder_api.body_limit import BodyLimitMiddleware
from celery_harder_api.errors import (
    broker_unavailable,
    invalid_workflow,
    method_not_allowed,
    undecodable_body,
    validation_failed,
)
from celery_harder_api.metrics import install_metrics
from celery_harder_api.routes import health, tasks, workflows

log = logging.getLogger(__name__)


async def reap_deadlines(engine: WorkflowEngine, settings: Settings) -> None:
    """Time out workflows past their deadline, even when nobody reads their status."""
    while True:
        try:
            await off_loop(engine.enforce_deadlines, timeout=settings.redis_timeout + 5)
        except BrokerUnavailable as exc:
            log.warning("deadline reaper: %s", exc)
        await asyncio.sleep(settings.workflow_poll_interval)


def auth_warning(policy: AuthPolicy) -> str | None:
    """What to log at start when the API is open, or closed to everyone."""
    if not policy.enabled:
        return "API authentication is OFF (CELERY_HARDER_API_AUTH=false): anyone can submit work"
    if not policy.keys:
        return (
            "no API keys configured (CELERY_HARDER_API_KEYS): every request but /healthz, "
            "/readyz and /metrics answers 401"
        )
    return None


def without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of an API running with auth off: no scheme, no 401/403."""
    document.get("components", {}).pop("securitySchemes", None)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.pop("security", None)
            for code in ("401", "403"):
                operation.get("responses", {}).pop(code, None)
    return document


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for `settings` (the environment's by default)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(reap_deadlines(app.state.engine, settings))
        yield
        reaper.cancel()
        await app.state.async_client.close()
        app.state.task_client.app.close()

    app = FastAPI(
        title="celery-harder",
        version=__version__,
        description="Celery on Kubernetes: submit tasks and canvas workflows, follow them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth = policy_from(settings.api_auth, settings.api_keys.get_secret_value())
    warning = auth_warning(app.state.auth)
    if warning:
        log.warning(warning)
    app.state.task_client = create_task_client(settings)
    app.state.async_client = AsyncTaskClient(app.state.task_client)
    app.state.metrics = install_metrics(app, settings)
    app.state.engine = WorkflowEngine(app.state.task_client, observer=app.state.metrics.workflows)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(SpecError, invalid_workflow)
    app.add_exception_handler(400, undecodable_body)
    app.add_exception_handler(405, method_not_allowed)
    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(workflows.router)
    if not app.state.auth.enabled:
        build_openapi = app.openapi

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                app.openapi_schema = without_security(build_openapi())
            return app.openapi_schema

        app.openapi = openapi  # type: ignore[method-assign]
    return app
