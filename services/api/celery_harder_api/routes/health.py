"""Liveness and readiness."""

from fastapi import APIRouter

from celery_harder_api.blocking import off_loop
from celery_harder_api.dependencies import AppSettings, Client

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process serves requests (needs nothing else)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Redis unreachable"}})
async def readyz(client: Client, settings: AppSettings) -> dict[str, str]:
    """Broker and result backend answer; 503 otherwise."""
    await off_loop(client.ping, timeout=settings.redis_timeout + 1)
    return {"status": "ready"}
