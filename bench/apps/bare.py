"""B1's bare endpoint: FastAPI, the same pydantic body as POST /add, one LPUSH (redis.asyncio).

The least an HTTP submit endpoint on this stack can do; served by the same uvicorn
settings as the API (`uvicorn bench.apps.bare:create_app --factory`).
"""

import os
import uuid

import redis.asyncio as aioredis
from fastapi import FastAPI

from celery_harder.catalog import AddArgs

QUEUE = "bench:bare"
MAX_CONNECTIONS = 64


def create_app() -> FastAPI:
    app = FastAPI()
    # redis-py's async pool refuses past its limit; a blocking one queues requests instead.
    pool = aioredis.BlockingConnectionPool.from_url(
        os.environ["CELERY_BROKER_URL"], max_connections=MAX_CONNECTIONS, timeout=10
    )
    client = aioredis.Redis(connection_pool=pool)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/add", status_code=202)
    async def add(body: AddArgs) -> dict[str, str]:
        task_id = str(uuid.uuid4())
        await client.lpush(QUEUE, body.model_dump_json())
        return {"task_id": task_id}

    return app
