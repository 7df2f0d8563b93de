"""B1's ceiling and B7's plain uvicorn: a FastAPI hello-world on the same uvicorn settings.

It answers POST /add too, without reading the body, so hey sends it the same requests.
"""

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/add", status_code=202)
    async def add() -> dict[str, str]:
        return {"hello": "world"}

    return app
