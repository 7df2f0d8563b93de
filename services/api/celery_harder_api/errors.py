"""Error responses: 422 bodies that stay valid JSON, 503 for an unreachable Redis."""

import math
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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
