"""FastAPI dependencies: the settings and task client created at start-up, the API key check."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from celery_harder.async_client import AsyncTaskClient
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient
from celery_harder_api.auth import HEADER, READ, SUBMIT, AuthPolicy, Scope, decide

# auto_error=False: a missing key is decided by `decide` (401 with our body), not by FastAPI.
api_key_header = APIKeyHeader(
    name=HEADER,
    scheme_name="ApiKeyAuth",
    description="An API key; `read` scope for GET routes and SSE, `submit` for POST and DELETE.",
    auto_error=False,
)
# RFC 9110: a 401 carries a challenge; API keys have no registered scheme, so it names ours.
CHALLENGE = {"WWW-Authenticate": f'ApiKey header="{HEADER}"'}


async def get_task_client(request: Request) -> TaskClient:
    """The process's TaskClient."""
    client: TaskClient = request.app.state.task_client
    return client


async def get_async_client(request: Request) -> AsyncTaskClient:
    """The process's AsyncTaskClient (the TaskClient's submit and status on the event loop)."""
    client: AsyncTaskClient = request.app.state.async_client
    return client


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def require(scope: Scope) -> Callable[..., Awaitable[None]]:
    """A dependency that lets a request through only with a key holding `scope`."""

    async def check_key(
        request: Request, key: Annotated[str | None, Security(api_key_header)]
    ) -> None:
        policy: AuthPolicy = request.app.state.auth
        decision = decide(policy, key, scope)
        if not decision.allowed:
            assert decision.status is not None
            headers = CHALLENGE if decision.status == 401 else None
            raise HTTPException(decision.status, decision.detail, headers=headers)

    return check_key


Client = Annotated[TaskClient, Depends(get_task_client)]
AsyncClient = Annotated[AsyncTaskClient, Depends(get_async_client)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
CanRead = Depends(require(READ))
CanSubmit = Depends(require(SUBMIT))
