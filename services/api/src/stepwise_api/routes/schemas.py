"""`/api/workflow/schemas`: the tenant's JSON Schema registry (SPEC §7)."""

from __future__ import annotations

import re

from aiohttp import web
from stepwise_contract.enums import Role
from stepwise_contract.schemas import InvalidSchemaError, check_schema

from stepwise_api import api_schemas as s
from stepwise_api import schema_store
from stepwise_api.auth import Principal
from stepwise_api.bodies import json_body
from stepwise_api.deps import deps_of
from stepwise_api.errors import ApiError
from stepwise_api.params import decode_cursor, encode_cursor, limit
from stepwise_api.responses import json_response, row, rows
from stepwise_api.route_table import Param, Reply, Route

SCHEMA_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
REF_PARAM = {"type": "string", "pattern": SCHEMA_REF.pattern}
PAGE_PARAMS = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    Param("cursor", {"type": "string"}),
)


def _ref(request: web.Request) -> str:
    ref = request.match_info["schemaRef"]
    if not SCHEMA_REF.match(ref):
        raise ApiError(404, "SCHEMA_NOT_FOUND", f"schema {ref!r} not found")
    return ref


async def put_schema(request: web.Request, principal: Principal) -> web.StreamResponse:
    ref = _ref(request)
    schema = await json_body(request)
    if not isinstance(schema, dict):
        raise ApiError(400, "INVALID_SCHEMA", "a payload schema must be a JSON object")
    try:
        check_schema(schema)
    except InvalidSchemaError as exc:
        raise ApiError(400, "INVALID_SCHEMA", f"not a valid JSON Schema: {exc}") from None
    pool = deps_of(request).pool
    if await schema_store.is_builtin(pool, ref):
        raise ApiError(
            409, "SCHEMA_BUILTIN", f"{ref!r} is a built-in schema and cannot be replaced"
        )
    record, created = await schema_store.put_schema(pool, principal.tenant, ref, schema)
    body = row(record)
    assert body is not None
    body.pop("created")
    return json_response(body, status=201 if created else 200)


async def list_schemas(request: web.Request, principal: Principal) -> web.StreamResponse:
    size = limit(request)
    cursor = decode_cursor(request, 1)
    after = str(cursor[0]) if cursor else None
    records = await schema_store.list_schemas(deps_of(request).pool, principal.tenant, after, size)
    next_cursor = encode_cursor([records[-1]["schema_ref"]]) if len(records) == size else None
    return json_response({"schemas": rows(records), "nextCursor": next_cursor})


async def get_schema(request: web.Request, principal: Principal) -> web.StreamResponse:
    ref = _ref(request)
    record = await schema_store.get_schema(deps_of(request).pool, principal.tenant, ref)
    if record is None:
        raise ApiError(404, "SCHEMA_NOT_FOUND", f"schema {ref!r} not found")
    return json_response(row(record))


ROUTES = [
    Route(
        "PUT",
        "/api/workflow/schemas/{schemaRef}",
        put_schema,
        Role.PUBLISH,
        "Register or replace a payload JSON Schema (the body is the schema)",
        "schemas",
        write=True,
        body={"type": "object"},
        path_params={"schemaRef": REF_PARAM},
        replies={
            200: Reply("replaced", s.SCHEMA_ROW),
            201: Reply("registered", s.SCHEMA_ROW),
        },
    ),
    Route(
        "GET",
        "/api/workflow/schemas",
        list_schemas,
        Role.READ,
        "List payload schemas (built-ins and the tenant's)",
        "schemas",
        query=PAGE_PARAMS,
        replies={200: Reply("a page of schemas", s.page("schemas", s.SCHEMA_ROW))},
    ),
    Route(
        "GET",
        "/api/workflow/schemas/{schemaRef}",
        get_schema,
        Role.READ,
        "Get a payload schema",
        "schemas",
        path_params={"schemaRef": REF_PARAM},
        replies={200: Reply("the schema", s.SCHEMA_ROW)},
    ),
]
