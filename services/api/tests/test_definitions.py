"""Schemas registry and definitions: create, validate, replace, publish, versions, pause."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from stepwise_contract.enums import Role
from stepwise_contract.hashing import definition_hash


async def test_schema_registry(api: Any, tenant: Any) -> None:
    ref = f"payload.Ticket{uuid.uuid4().hex[:6]}.v1"
    schema = {"type": "object", "required": ["ticketId"]}
    resp = await api.put(f"/api/workflow/schemas/{ref}", json=schema, headers=tenant.headers())
    assert resp.status == 201
    assert (await resp.json())["schema_json"] == schema
    schema2 = {**schema, "properties": {"ticketId": {"type": "string"}}}
    resp = await api.put(f"/api/workflow/schemas/{ref}", json=schema2, headers=tenant.headers())
    assert resp.status == 200
    resp = await api.get(f"/api/workflow/schemas/{ref}", headers=tenant.headers(Role.READ))
    assert (await resp.json())["schema_json"] == schema2
    resp = await api.get("/api/workflow/schemas?limit=500", headers=tenant.headers(Role.READ))
    refs = [s["schema_ref"] for s in (await resp.json())["schemas"]]
    assert ref in refs and "payload.Empty.v1" in refs
    # the built-in cannot be replaced, an invalid schema is refused, manage cannot publish
    resp = await api.put(
        "/api/workflow/schemas/payload.Empty.v1", json={"type": "object"}, headers=tenant.headers()
    )
    assert resp.status == 409
    resp = await api.put(
        f"/api/workflow/schemas/{ref}", json={"type": "bogus"}, headers=tenant.headers()
    )
    assert resp.status == 400 and (await resp.json())["code"] == "INVALID_SCHEMA"
    resp = await api.put(
        f"/api/workflow/schemas/{ref}", json=schema, headers=tenant.headers(Role.MANAGE)
    )
    assert resp.status == 403
    resp = await api.get("/api/workflow/schemas/payload.Nope.v9", headers=tenant.headers())
    assert resp.status == 404


async def test_schema_list_pages(api: Any, tenant: Any) -> None:
    for i in range(3):
        resp = await api.put(
            f"/api/workflow/schemas/page.S{i}.v1", json={"type": "object"}, headers=tenant.headers()
        )
        assert resp.status == 201
    seen: list[str] = []
    url = "/api/workflow/schemas?limit=2"
    while url:
        body = await (await api.get(url, headers=tenant.headers())).json()
        seen += [s["schema_ref"] for s in body["schemas"]]
        url = (
            f"/api/workflow/schemas?limit=2&cursor={body['nextCursor']}"
            if body["nextCursor"]
            else ""
        )
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert {"page.S0.v1", "page.S1.v1", "page.S2.v1", "payload.Empty.v1"} <= set(seen)


async def test_create_sets_id_and_validates(api: Any, tenant: Any) -> None:
    raw = {
        "id": "ignored",
        "name": "Escalate",
        "steps": [{"id": "a", "type": "state.set", "config": {"state": "x"}}],
    }
    resp = await api.post(
        "/api/workflow-definitions",
        json={"definition": raw, "key": "esc"},
        headers=tenant.headers(),
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["draftVersion"] == 1 and body["validation"]["status"] == "valid"
    wf = body["workflowId"]
    detail = await (
        await api.get(f"/api/workflow-definitions/{wf}", headers=tenant.headers())
    ).json()
    assert detail["draft_definition"]["id"] == wf
    assert detail["status"] == "draft" and detail["key"] == "esc" and detail["versions"] == []
    assert detail["is_paused"] is False and detail["concurrency_limit"] is None
    # the key is unique per tenant
    resp = await api.post(
        "/api/workflow-definitions",
        json={"definition": raw, "key": "esc"},
        headers=tenant.headers(),
    )
    assert resp.status == 409 and (await resp.json())["code"] == "DEFINITION_KEY_EXISTS"


async def test_invalid_draft_is_stored_and_cannot_publish(api: Any, tenant: Any) -> None:
    raw = {
        "name": "bad",
        "payloadSchemaRef": "payload.Missing.v1",
        "steps": [
            {"id": "a", "type": "action.call", "config": {"actionId": "no.such", "version": 1}},
            {"id": "a", "type": "bogus.type"},
        ],
    }
    resp = await api.post(
        "/api/workflow-definitions", json={"definition": raw}, headers=tenant.headers()
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["validation"]["status"] == "error"
    wf = body["workflowId"]
    resp = await api.post(
        f"/api/workflow-definitions/{wf}/validate", headers=tenant.headers(Role.READ)
    )
    assert resp.status == 200
    codes = {e["code"] for e in (await resp.json())["errors"]}
    assert "UNKNOWN_NODE_TYPE" in codes
    resp = await api.post(f"/api/workflow-definitions/{wf}/publish", headers=tenant.headers())
    assert resp.status == 409
    problem = await resp.json()
    assert problem["code"] == "WORKFLOW_VALIDATION_FAILED"
    assert problem["validation"]["status"] == "error" and problem["errors"]
    # fix the draft: unknown action and unknown schema are reported with their codes
    raw2 = {
        "name": "bad",
        "payloadSchemaRef": "payload.Missing.v1",
        "steps": [
            {"id": "a", "type": "action.call", "config": {"actionId": "no.such", "version": 1}}
        ],
    }
    resp = await api.put(
        f"/api/workflow-definitions/{wf}", json={"definition": raw2}, headers=tenant.headers()
    )
    body = await resp.json()
    assert body["draftVersion"] == 2
    assert {e["code"] for e in body["validation"]["errors"]} == {
        "UNKNOWN_ACTION",
        "UNKNOWN_PAYLOAD_SCHEMA",
    }
    resp = await api.put(
        f"/api/workflow-definitions/{wf}",
        json={"definition": api.definition("good")},
        headers=tenant.headers(),
    )
    assert (await resp.json())["validation"]["status"] == "valid"
    resp = await api.post(f"/api/workflow-definitions/{wf}/publish", headers=tenant.headers())
    assert resp.status == 200 and (await resp.json())["version"] == 1


async def test_secret_and_child_workflow_checks(api: Any, tenant: Any, pool: asyncpg.Pool) -> None:
    raw = {
        "name": "secrets",
        "steps": [
            {
                "id": "a",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": {"$secret": "TOKEN"}},
                },
            },
            {
                "id": "b",
                "type": "control.callWorkflow",
                "workflowId": str(uuid.uuid4()),
                "workflowVersion": 1,
            },
        ],
    }
    resp = await api.post(
        "/api/workflow-definitions", json={"definition": raw}, headers=tenant.headers()
    )
    codes = {e["code"] for e in (await resp.json())["validation"]["errors"]}
    assert codes == {"SECRET_NOT_FOUND", "UNKNOWN_CHILD_WORKFLOW"}


async def test_publish_versions_and_hash(api: Any, tenant: Any) -> None:
    ref = f"payload.V{uuid.uuid4().hex[:6]}.v1"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    await api.put(f"/api/workflow/schemas/{ref}", json=schema, headers=tenant.headers())
    raw = api.definition(
        "versioned", payloadSchemaRef=ref, trigger={"type": "event", "eventName": "THING_HAPPENED"}
    )
    resp = await api.post(
        "/api/workflow-definitions", json={"definition": raw}, headers=tenant.headers()
    )
    wf = (await resp.json())["workflowId"]
    resp = await api.post(
        f"/api/workflow-definitions/{wf}/publish", json={}, headers=tenant.headers(Role.PUBLISH)
    )
    assert (await resp.json())["version"] == 1
    resp = await api.post(
        f"/api/workflow-definitions/{wf}/publish", json={"version": 1}, headers=tenant.headers()
    )
    assert resp.status == 409 and (await resp.json())["code"] == "VERSION_EXISTS"
    resp = await api.post(
        f"/api/workflow-definitions/{wf}/publish", json={"version": 5}, headers=tenant.headers()
    )
    assert (await resp.json())["version"] == 5
    row = await tenant.pool.fetchrow(
        "SELECT status, latest_published_version, trigger_event_name FROM workflow_definitions"
        " WHERE workflow_id = $1",
        uuid.UUID(wf),
    )
    assert tuple(row) == ("published", 5, "THING_HAPPENED")
    resp = await api.get(
        f"/api/workflow-definitions/{wf}/versions", headers=tenant.headers(Role.READ)
    )
    versions = (await resp.json())["versions"]
    assert [v["version"] for v in versions] == [5, 1]
    v1 = await (
        await api.get(f"/api/workflow-definitions/{wf}/versions/1", headers=tenant.headers())
    ).json()
    assert v1["definition_json"]["id"] == wf and v1["definition_json"]["version"] == 1
    assert v1["definition_hash"] == definition_hash(v1["definition_json"])
    assert v1["payload_schema_json"] == schema
    resp = await api.get(f"/api/workflow-definitions/{wf}/versions/3", headers=tenant.headers())
    assert resp.status == 404
    # the version is immutable: a new draft does not change it
    await api.put(
        f"/api/workflow-definitions/{wf}",
        json={"definition": api.definition("changed")},
        headers=tenant.headers(),
    )
    again = await (
        await api.get(f"/api/workflow-definitions/{wf}/versions/1", headers=tenant.headers())
    ).json()
    assert again == v1
    detail = await (
        await api.get(f"/api/workflow-definitions/{wf}", headers=tenant.headers())
    ).json()
    assert [v["version"] for v in detail["versions"]] == [5, 1]
    assert detail["draft_version"] == 2


async def test_patch_pause_and_concurrency(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    resp = await api.patch(
        f"/api/workflow-definitions/{wf}",
        json={"isPaused": True, "concurrencyLimit": 2},
        headers=tenant.headers(),
    )
    body = await resp.json()
    assert body["is_paused"] is True and body["concurrency_limit"] == 2
    resp = await api.patch(
        f"/api/workflow-definitions/{wf}", json={"isPaused": False}, headers=tenant.headers()
    )
    body = await resp.json()
    assert body["is_paused"] is False and body["concurrency_limit"] == 2
    resp = await api.patch(
        f"/api/workflow-definitions/{wf}", json={"concurrencyLimit": None}, headers=tenant.headers()
    )
    assert (await resp.json())["concurrency_limit"] is None
    resp = await api.patch(
        f"/api/workflow-definitions/{wf}", json={"concurrencyLimit": 0}, headers=tenant.headers()
    )
    assert resp.status == 400


async def test_definition_list_pages(api: Any, tenant: Any) -> None:
    ids = [await api.create_published(tenant.headers()) for _ in range(3)]
    seen: list[str] = []
    url = "/api/workflow-definitions?limit=2"
    while url:
        body = await (await api.get(url, headers=tenant.headers())).json()
        seen += [d["workflow_id"] for d in body["definitions"]]
        url = (
            f"/api/workflow-definitions?limit=2&cursor={body['nextCursor']}"
            if body["nextCursor"]
            else ""
        )
    assert sorted(seen) == sorted(ids)
    body = await (
        await api.get("/api/workflow-definitions?status=draft", headers=tenant.headers())
    ).json()
    assert body["definitions"] == []
