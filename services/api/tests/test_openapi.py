"""The OpenAPI document matches the registered routes exactly, and is a valid OpenAPI 3.1
document whose request schemas accept what the API accepts."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator


def _registered(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        # HEAD rides along with every GET; the Run Studio's static pages are not JSON API routes.
        if route.method == "HEAD" or (route.name or "").startswith("studio"):
            continue
        assert route.resource is not None
        out.add((route.method, route.resource.canonical))
    return out


async def test_document_lists_exactly_the_registered_routes(api: Any) -> None:
    resp = await api.get("/api/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    registered = _registered(api.client.server.app)
    assert documented == registered
    # every SPEC §7 route is there
    for expected in (
        ("PUT", "/api/workflow/schemas/{schemaRef}"),
        ("POST", "/api/workflow-definitions/{workflowId}/publish"),
        ("GET", "/api/workflow-definitions/{workflowId}/versions/{version}"),
        ("POST", "/api/workflow-runs"),
        ("GET", "/api/workflow-runs/export"),
        ("POST", "/api/workflow-runs/{runId}/quota-resume"),
        ("GET", "/api/workflow/events/summary"),
        ("POST", "/api/workflow/tasks/{taskId}/complete"),
        ("GET", "/readyz"),
    ):
        assert expected in documented
    assert not any(path.endswith(("/retry", "/resume", "/requeue")) for _, path in documented)


async def test_operations_are_well_formed(api: Any) -> None:
    document = await (await api.get("/api/openapi.json")).json()
    operation_ids = []
    for path, operations in document["paths"].items():
        for op in operations.values():
            operation_ids.append(op["operationId"])
            assert op["responses"], path
            for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
                assert "{" + name + "}" in path
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    Draft202012Validator.check_schema(media["schema"])
    assert len(operation_ids) == len(set(operation_ids))
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    launch = document["paths"]["/api/workflow-runs"]["post"]
    assert launch["x-stepwise-role"] == "manage"
    ref = launch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body_schema["properties"]) == {
        "workflowId", "workflowVersion", "payload", "priority"
    }  # fmt: skip
    assert body_schema["required"] == ["workflowId"]
    priority = [b for b in body_schema["properties"]["priority"]["anyOf"] if b["type"] != "null"]
    assert priority == [{"type": "integer", "minimum": 1, "maximum": 5}]
    run = document["paths"]["/api/workflow-runs/{runId}"]["get"]["responses"]["200"]
    assert "priority" in str(run)
