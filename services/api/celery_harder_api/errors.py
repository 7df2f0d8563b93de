"""Error responses: 422 bodies that stay valid JSON, 503 for Redis, 405 with Allow; their docs."""

import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from celery_harder.workflow.spec import SpecError


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities spelled as strings, which JSON cannot carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, even when the rejected input held NaN or Infinity."""
    assert isinstance(exc, RequestValidationError)
    detail = json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
    )


async def undecodable_body(request: Request, exc: Exception) -> JSONResponse:
    """422 for a body FastAPI could not decode (not UTF-8), like any other malformed JSON.

    FastAPI answers 400 only there; the API's contract says malformed input is a 422.
    """
    detail = [{"type": "json_invalid", "loc": ["body"], "msg": "the body is not UTF-8 JSON"}]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
    )


async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with the reason, when Redis cannot be reached in time."""
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"broker unavailable: {exc}"},
    )


async def invalid_workflow(request: Request, exc: Exception) -> JSONResponse:
    """422 in FastAPI's shape, one entry per problem, each naming its node path."""
    assert isinstance(exc, SpecError)
    detail = [
        {"type": "workflow_spec", "loc": ["body", issue.path], "msg": str(issue)}
        for issue in exc.issues
    ]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail}
    )


class ErrorBody(BaseModel):
    """An error with its reason (401, 403, 404, 405, 413, 503)."""

    detail: str


# Every status a route can answer besides its success, with what it means.
STATUS_DESCRIPTIONS: dict[int, str] = {
    401: "No API key, or one that is not configured (X-API-Key).",
    403: "The API key lacks the scope this route needs.",
    404: "Not found: an id the system never issued, or one whose record expired.",
    413: "The request body is larger than CELERY_HARDER_API_MAX_BODY_BYTES.",
    422: "Invalid input: malformed JSON, or a body or parameter that does not fit the schema.",
    503: "Redis did not answer within CELERY_HARDER_REDIS_TIMEOUT.",
}


class ValidationIssue(BaseModel):
    """One problem with the input: where (`loc`), what (`msg`), pydantic's `type`."""

    model_config = ConfigDict(extra="allow")

    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorBody(BaseModel):
    """A 422: every problem found, workflow problems with their node path as last `loc`."""

    detail: list[ValidationIssue]


def documented(*statuses: int, json_media: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses.

    `json_media` spells the JSON media type out, for routes whose success is not JSON
    (FastAPI would give their errors the route's media type).
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for code in statuses:
        model = ValidationErrorBody if code == 422 else ErrorBody
        entry: dict[str, Any] = {"description": STATUS_DESCRIPTIONS[code]}
        if json_media:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            entry["content"] = {"application/json": {"schema": ref}}
        else:
            entry["model"] = model
        responses[code] = entry
    return responses


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the request's path (not only the first route's).

    Asked of the routes themselves (does one match fully with this method?), so that
    routes from included routers count as well.
    """
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    ]


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 whose Allow header lists every method of the path, as RFC 9110 asks."""
    allow = allowed_methods(request.app.router.routes, request.scope)
    return JSONResponse(
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        content={"detail": "Method Not Allowed"},
        headers={"Allow": ", ".join(allow)},
    )
