"""FastAPI dependencies: the settings and task client created at start-up, the API key check."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from celery_harder.async_client import AsyncTaskClient
from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient
from celery_harder_api.auth import HEADER, READ, SUBMIT, AuthPolicy, Scope, decide

# RFC 9110: a 401 carries a challenge; API keys have no registered scheme, so it names ours.
CHALLENGE = {"WWW-Authenticate": f'ApiKey header="{HEADER}"'}
SCHEME_DESCRIPTION = (
    "An API key; `read` scope for GET routes and SSE, `submit` for POST and DELETE."
)


class ApiKeyCheck(APIKeyHeader):
    """The `X-API-Key` security scheme and the check of one scope, as one dependency.

    FastAPI resolves every dependency of a route per request; a scheme and a check
    depending on it were two (and the check a third level), which cost more than
    the rest of a POST /add's routing. This is the scheme itself, so the OpenAPI
    document is the same (scheme `ApiKeyAuth`, header `X-API-Key`), and calling it
    reads the header as APIKeyHeader does and decides.
    """

    def __init__(self, scope: Scope) -> None:
        # auto_error=False: a missing key is decided by `decide` (401 with our body).
        super().__init__(
            name=HEADER, scheme_name="ApiKeyAuth", description=SCHEME_DESCRIPTION, auto_error=False
        )
        self.scope = scope

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        policy: AuthPolicy = request.app.state.auth
        if not policy.enabled:
            return
        decision = decide(policy, request.headers.get(HEADER), self.scope)
        if not decision.allowed:
            assert decision.status is not None
            headers = CHALLENGE if decision.status == 401 else None
            raise HTTPException(decision.status, decision.detail, headers=headers)


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


def require(scope: Scope) -> ApiKeyCheck:
    """A dependency that lets a request through only with a key holding `scope`."""
    return ApiKeyCheck(scope)


Client = Annotated[TaskClient, Depends(get_task_client)]
AsyncClient = Annotated[AsyncTaskClient, Depends(get_async_client)]
AppSettings = Annotated[Settings, Depends(get_app_settings)]
CanRead = Security(require(READ))
CanSubmit = Security(require(SUBMIT))
