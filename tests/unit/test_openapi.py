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


OPEN = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}
REDIS_ROUTES = {
    ("post", p) for p in ("/add", "/test-request-info", "/tasks", "/chain", "/group", "/chord")
} | {
    ("post", "/workflows"),
    ("post", "/documents"),
    ("get", "/result/{task_id}"),
    ("get", "/workflows/{workflow_id}"),
    ("delete", "/workflows/{workflow_id}"),
    ("get", "/workflows/{workflow_id}/events"),
    ("get", "/readyz"),
}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def test_the_document_declares_the_api_key_scheme_and_every_protected_route_uses_it() -> None:
    spec = create_app(Settings(api_keys="")).openapi()
    assert spec["components"]["securitySchemes"] == {
        "ApiKeyAuth": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": spec["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
        }
    }
    protected = 0
    for method, path, op in operations(spec):
        if path in OPEN:
            assert "security" not in op, f"{method} {path} is open to probes"
            continue
        protected += 1
        assert op["security"] == [{"ApiKeyAuth": []}], f"{method} {path}"
        for code in ("401", "403"):
            assert code in op["responses"], f"{method.upper()} {path} does not document {code}"
    assert protected == 13


def test_every_route_documents_the_statuses_it_can_answer() -> None:
    spec = create_app(Settings()).openapi()
    for method, path, op in operations(spec):
        codes = set(op["responses"])
        where = f"{method.upper()} {path}"
        if op.get("requestBody") or op.get("parameters"):
            assert "422" in codes, f"{where}: 422"
        if op.get("requestBody") or method == "delete":
            assert "413" in codes, f"{where}: 413 (the body limit covers every method with a body)"
        if (method, path) in REDIS_ROUTES:
            assert "503" in codes, f"{where}: 503"
        if "{" in path:
            assert "404" in codes, f"{where}: 404"
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                assert set(response["content"]) == {"application/json"}, f"{where} {code}"


def test_every_reference_resolves() -> None:
    spec = create_app(Settings()).openapi()
    for ref in refs(spec):
        assert resolve(spec, {"$ref": ref}), ref


def test_sse_is_text_event_stream() -> None:
    spec = create_app(Settings()).openapi()
    ok = spec["paths"]["/workflows/{workflow_id}/events"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream"}


def test_workflow_status_routes_have_a_response_model() -> None:
    spec = create_app(Settings()).openapi()
    for method in ("get", "delete"):
        ok = spec["paths"]["/workflows/{workflow_id}"][method]["responses"]
        (success,) = (r for c, r in ok.items() if c.startswith("2"))
        schema = resolve(spec, success["content"]["application/json"]["schema"])
        assert {"id", "phase", "progress", "nodes", "failedNode"} <= set(schema["properties"])


def test_task_calls_are_a_union_discriminated_over_the_catalog() -> None:
    from celery_harder.catalog import CATALOG  # noqa: PLC0415

    spec = create_app(Settings()).openapi()
    body = spec["paths"]["/tasks"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    assert schema["discriminator"]["propertyName"] == "task"
    assert set(schema["discriminator"]["mapping"]) == set(CATALOG)
    consts = {resolve(spec, v)["properties"]["task"]["const"] for v in schema["oneOf"]}
    assert consts == set(CATALOG)


def test_workflows_take_a_node_not_anything() -> None:
    spec = create_app(Settings()).openapi()
    body = spec["paths"]["/workflows"]["post"]["requestBody"]["content"]["application/json"]
    request = resolve(spec, body["schema"])
    assert request["properties"]["workflow"]["$ref"] == "#/components/schemas/Node"
    node = spec["components"]["schemas"]["Node"]
    kinds = {next(iter(resolve(spec, v).get("required", ["task"]))) for v in node["anyOf"]}
    assert kinds == {"task", "chain", "group", "chord"}


def test_with_auth_off_the_document_promises_no_key() -> None:
    spec = create_app(Settings(api_auth=False)).openapi()
    assert "securitySchemes" not in spec["components"]
    for method, path, op in operations(spec):
        assert "security" not in op, f"{method} {path}"
        assert not {"401", "403"} & set(op["responses"]), f"{method} {path}"


def test_no_schema_carries_keywords_json_schema_does_not_know() -> None:
    """pydantic writes `ge`/`le` for some constrained Optionals; validators ignore them."""
    spec = create_app(Settings()).openapi()

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            if value.get("type") in ("integer", "number"):
                assert not {"ge", "le", "gt", "lt"} & set(value), where
            for key, child in value.items():
                walk(child, f"{where}/{key}")
        elif isinstance(value, list):
            for i, child in enumerate(value):
                walk(child, f"{where}/{i}")

    walk(spec, "#")
