"""T0: the OpenAPI document gives an example for every request body."""

from typing import Any

from celery_harder.settings import Settings
from celery_harder_api.app import create_app


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    resolved: dict[str, Any] = spec
    for part in ref.removeprefix("#/").split("/"):
        resolved = resolved[part]
    return resolved


def test_every_request_body_has_an_example() -> None:
    spec = create_app(Settings()).openapi()
    bodies = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if not body:
                continue
            bodies += 1
            media = body["content"]["application/json"]
            schema = resolve(spec, media["schema"])
            has_example = "examples" in media or "example" in media or "examples" in schema
            assert has_example, f"{method.upper()} {path} has no example"
    assert bodies == 8  # add, test-request-info, tasks, chain, group, chord, workflows, documents
