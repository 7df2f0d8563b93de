"""Liveness and readiness: open to probes, no API key."""

from fastapi import APIRouter

from celery_harder_api.blocking import off_loop
from celery_harder_api.dependencies import AppSettings, Client
from celery_harder_api.errors import documented

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process serves requests (needs nothing else)."""
    return {"status": "ok"}


@router.get("/readyz", responses=documented(503))
async def readyz(client: Client, settings: AppSettings) -> dict[str, str]:
    """Broker and result backend answer; 503 otherwise."""
    await off_loop(client.ping, timeout=settings.redis_timeout + 1)
    return {"status": "ready"}
