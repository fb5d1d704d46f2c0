"""The OpenAPI 3.1 document, generated from the same route table that registers the handlers
(plus the public routes), so the document and the implementation cannot drift."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec
from stepwise_contract.names import EVENT_NAME_PATTERN, MAX_EVENT_NAME

from stepwise_api import api_schemas as s
from stepwise_api.definition_store import INT32_MAX
from stepwise_api.route_table import Route
from stepwise_api.run_controls import REASON_PATTERN

OPENAPI_PATH = "/api/openapi.json"
_PATH_PARAM = re.compile(r"\{(\w+)\}")

# Routes outside the table: no authentication. (method, path, summary, media type)
PUBLIC_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", OPENAPI_PATH, "This OpenAPI document", "application/json"),
    ("GET", "/healthz", "Liveness", "application/json"),
    ("GET", "/readyz", "Readiness: Postgres, Temporal, NATS", "application/json"),
    ("GET", "/metrics", "Prometheus metrics", "text/plain"),
)  # fmt: skip


# Checks the handlers make beyond the contract's body types, stated in the document too:
# (component, property) → extra JSON Schema keywords.
BODY_CONSTRAINTS: dict[tuple[str, str], dict[str, Any]] = {
    ("CancelRequest", "reason"): {"minLength": 3, "pattern": REASON_PATTERN},
    ("ReplayRequest", "reason"): {"minLength": 3, "pattern": REASON_PATTERN},
    ("PublishEventRequest", "eventName"): {
        "pattern": EVENT_NAME_PATTERN.pattern,
        "maxLength": MAX_EVENT_NAME,
    },
    ("PublishEventRequest", "eventId"): {"format": "uuid"},
    ("LaunchRequest", "workflowId"): {
        "minLength": 1,
        "description": "the workflow's id (a uuid) or the key it was created with",
    },
    ("LaunchRequest", "workflowVersion"): {"minimum": 1, "maximum": INT32_MAX},
    ("PublishRequest", "version"): {"minimum": 1, "maximum": INT32_MAX},
    ("PatchDefinitionRequest", "concurrencyLimit"): {"minimum": 1, "maximum": INT32_MAX},
    ("CreateDefinitionRequest", "key"): {"minLength": 1, "pattern": r"\S"},
}


def _constrain(components: dict[str, Any]) -> None:
    for (component, prop), extra in BODY_CONSTRAINTS.items():
        schema = components[component]["properties"][prop]
        # Optional fields are `anyOf: [T, null]`: the keywords belong to the non-null branch.
        branches = schema.get("anyOf", [schema])
        for branch in branches:
            if branch.get("type") != "null":
                branch.update(extra)


def _body_schemas(routes: Sequence[Route]) -> tuple[dict[str, Any], dict[type, Any]]:
    types = [r.body for r in routes if isinstance(r.body, type)]
    unique = list(dict.fromkeys(types))
    refs, components = msgspec.json.schema_components(
        unique, ref_template="#/components/schemas/{name}"
    )
    _constrain(components)
    return components, dict(zip(unique, refs, strict=True))


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _operation(route: Route, body_refs: dict[type, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(route.path_params.get(name, {"type": "string"})),
        }
        for name in _PATH_PARAM.findall(route.path)
    ]
    for param in route.query:
        entry: dict[str, Any] = {
            "name": param.name,
            "in": "query",
            "required": param.required,
            "schema": dict(param.schema),
        }
        if param.description:
            entry["description"] = param.description
        if param.schema.get("type") == "array":
            entry["style"] = "form"
            entry["explode"] = True
        parameters.append(entry)
    if route.operation_id == "launch_run":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    responses: dict[str, Any] = {}
    for status, reply in route.replies.items():
        content = (
            {reply.media_type: {"schema": dict(reply.schema)}} if reply.schema is not None else None
        )
        responses[str(status)] = {"description": reply.description}
        if content:
            responses[str(status)]["content"] = content
    responses["default"] = _problem("an error (problem+json with a stable code)")
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "parameters": parameters,
        "responses": responses,
        "x-stepwise-role": route.role.value,
    }
    if route.body is not None:
        schema = body_refs[route.body] if isinstance(route.body, type) else dict(route.body)
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": schema}},
        }
    return op


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    components, body_refs = _body_schemas(routes)
    components["Problem"] = s.PROBLEM
    paths: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for route in routes:
        if route.operation_id in seen:
            raise ValueError(f"duplicate operationId {route.operation_id}")
        seen.add(route.operation_id)
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, body_refs)
    for method, path, summary, media_type in PUBLIC_ROUTES:
        paths.setdefault(path, {})[method.lower()] = {
            "operationId": "get_" + path.strip("/").replace("/", "_").replace(".", "_"),
            "summary": summary,
            "tags": ["ops"],
            "security": [],
            "responses": {"200": {"description": "ok", "content": {media_type: {"schema": {}}}}},
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stepwise API",
            "version": "1.0.0",
            "description": "Workflow definitions, runs, events and human tasks (SPEC §7).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
