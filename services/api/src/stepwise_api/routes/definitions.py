"""`/api/workflow-definitions`: drafts, validation, publish, versions, pause (SPEC §7)."""

from __future__ import annotations

from aiohttp import web
from stepwise_contract.actions import full_catalog
from stepwise_contract.enums import Role
from stepwise_contract.http import (
    CreateDefinitionRequest,
    PatchDefinitionRequest,
    PublishRequest,
    ReplaceDefinitionRequest,
)

from stepwise_api import api_schemas as s
from stepwise_api import definition_store as store
from stepwise_api.auth import Principal
from stepwise_api.bodies import typed_body
from stepwise_api.deps import deps_of
from stepwise_api.errors import ApiError
from stepwise_api.params import (
    decode_cursor,
    encode_cursor,
    limit,
    make_time_id_cursor,
    path_uuid,
    time_id_cursor,
)
from stepwise_api.responses import json_response, rows
from stepwise_api.route_table import Param, Reply, Route

WF = {"workflowId": {"type": "string", "format": "uuid"}}
PAGE = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    Param("cursor", {"type": "string"}),
)


async def create_definition(request: web.Request, principal: Principal) -> web.StreamResponse:
    body = await typed_body(request, CreateDefinitionRequest)
    if body.key is not None and not body.key.strip():
        raise ApiError(400, "INVALID_BODY", "key must not be empty")
    workflow_id, draft_version, result = await store.create(
        deps_of(request).pool, principal.tenant, body.definition, body.key, full_catalog()
    )
    return json_response(
        {
            "workflowId": workflow_id,
            "draftVersion": draft_version,
            "validation": store.validation_json(result),
        },
        status=201,
    )


async def list_definitions(request: web.Request, principal: Principal) -> web.StreamResponse:
    size = limit(request)
    status = request.query.get("status") or None
    if status not in (None, "draft", "published"):
        raise ApiError(400, "INVALID_PARAMETER", "status must be draft or published")
    records = await store.list_definitions(
        deps_of(request).pool, principal.tenant, status, time_id_cursor(request), size
    )
    last = records[-1] if len(records) == size else None
    return json_response(
        {
            "definitions": rows(records),
            "nextCursor": make_time_id_cursor(last["created_at"], last["workflow_id"])
            if last
            else None,
        }
    )


async def get_definition(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    return json_response(await store.detail(deps_of(request).pool, principal.tenant, workflow_id))


async def replace_definition(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    body = await typed_body(request, ReplaceDefinitionRequest)
    version, result = await store.replace_draft(
        deps_of(request).pool, principal.tenant, workflow_id, body.definition, full_catalog()
    )
    return json_response(
        {
            "workflowId": workflow_id,
            "draftVersion": version,
            "validation": store.validation_json(result),
        }
    )


async def patch_definition(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    body = await typed_body(request, PatchDefinitionRequest)
    pool = deps_of(request).pool
    await store.patch(pool, principal.tenant, workflow_id, body.is_paused, body.concurrency_limit)
    return json_response(await store.detail(pool, principal.tenant, workflow_id))


async def validate_definition(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    pool = deps_of(request).pool
    record = await store.require(pool, principal.tenant, workflow_id)
    draft = store.with_id(record["draft_definition"], workflow_id)
    result = await store.validate(pool, principal.tenant, draft, full_catalog())
    return json_response(store.validation_json(result))


async def publish_definition(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    body = await typed_body(request, PublishRequest, optional=True)
    async with deps_of(request).pool.acquire() as conn, conn.transaction():
        version, result = await store.publish(
            conn, principal.tenant, workflow_id, body.version, full_catalog()
        )
    return json_response({"version": version, "validation": store.validation_json(result)})


async def list_versions(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    size = limit(request)
    cursor = decode_cursor(request, 1)
    before = cursor[0] if cursor and isinstance(cursor[0], int) else None
    if cursor and before is None:
        raise ApiError(400, "INVALID_CURSOR", "the cursor is not one this API issued")
    records = await store.list_versions(
        deps_of(request).pool, principal.tenant, workflow_id, before, size
    )
    next_cursor = encode_cursor([records[-1]["version"]]) if len(records) == size else None
    return json_response({"versions": rows(records), "nextCursor": next_cursor})


async def get_version(request: web.Request, principal: Principal) -> web.StreamResponse:
    workflow_id = path_uuid(request, "workflowId", "workflow")
    try:
        number = int(request.match_info["version"])
    except ValueError:
        raise ApiError(404, "VERSION_NOT_FOUND", "version not found") from None
    pool = deps_of(request).pool
    await store.require(pool, principal.tenant, workflow_id)
    record = (
        await store.get_version(pool, principal.tenant, workflow_id, number)
        if -(2**31) <= number < 2**31
        else None
    )
    if record is None:
        raise ApiError(404, "VERSION_NOT_FOUND", f"version {number} of {workflow_id} not found")
    return json_response(dict(record))


_BASE = "/api/workflow-definitions"
_ONE = _BASE + "/{workflowId}"
ROUTES = [
    Route(
        "POST",
        _BASE,
        create_definition,
        Role.PUBLISH,
        "Create a workflow with a draft definition (the server sets the definition id)",
        "definitions",
        write=True,
        body=CreateDefinitionRequest,
        replies={201: Reply("created", s.DRAFT_RESULT)},
    ),
    Route(
        "GET",
        _BASE,
        list_definitions,
        Role.READ,
        "List workflow definitions",
        "definitions",
        query=(*PAGE, Param("status", {"enum": ["draft", "published"]})),
        replies={
            200: Reply("a page of definitions", s.page("definitions", s.DEFINITION_LIST_ITEM))
        },
    ),
    Route(
        "GET",
        _ONE,
        get_definition,
        Role.READ,
        "Get a workflow definition (draft, versions, status, pause, concurrency limit)",
        "definitions",
        path_params=WF,
        replies={200: Reply("the definition", s.DEFINITION)},
    ),
    Route(
        "PUT",
        _ONE,
        replace_definition,
        Role.PUBLISH,
        "Replace the draft",
        "definitions",
        write=True,
        body=ReplaceDefinitionRequest,
        path_params=WF,
        replies={200: Reply("the new draft version and its validation", s.DRAFT_RESULT)},
    ),
    Route(
        "PATCH",
        _ONE,
        patch_definition,
        Role.ADMIN,
        "Pause/unpause, set or remove the concurrency limit",
        "definitions",
        write=True,
        body=PatchDefinitionRequest,
        path_params=WF,
        replies={200: Reply("the definition", s.DEFINITION)},
    ),
    Route(
        "POST",
        _ONE + "/validate",
        validate_definition,
        Role.READ,
        "Validate the draft",
        "definitions",
        path_params=WF,
        replies={200: Reply("the validation result", s.VALIDATION)},
    ),
    Route(
        "POST",
        _ONE + "/publish",
        publish_definition,
        Role.PUBLISH,
        "Publish the draft as an immutable version (409 with the validation on errors)",
        "definitions",
        write=True,
        body=PublishRequest,
        body_required=False,
        path_params=WF,
        replies={200: Reply("published", s.PUBLISH_RESULT)},
    ),
    Route(
        "GET",
        _ONE + "/versions",
        list_versions,
        Role.READ,
        "List published versions (newest first)",
        "definitions",
        query=PAGE,
        path_params=WF,
        replies={200: Reply("a page of versions", s.page("versions", s.VERSION_ROW))},
    ),
    Route(
        "GET",
        _ONE + "/versions/{version}",
        get_version,
        Role.READ,
        "Get one published version",
        "definitions",
        path_params={**WF, "version": {"type": "integer", "minimum": 1}},
        replies={200: Reply("the version", s.VERSION_ROW)},
    ),
]
