"""Authentication and authorization shapes (SPEC §7): 401, 403, 404 for another tenant's
resource, suspended tenants read-only."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from stepwise_cli.admin_operations import create_key, revoke_key, set_suspended
from stepwise_contract.enums import Role


async def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_missing_and_invalid_keys_are_401(api: Any, tenant: Any) -> None:
    await _problem(await api.get("/api/workflow-runs"), 401, "UNAUTHENTICATED")
    await _problem(
        await api.get("/api/workflow-runs", headers={"Authorization": "Bearer sw_nope"}),
        401,
        "INVALID_API_KEY",
    )
    await _problem(
        await api.get("/api/workflow-runs", headers={"Authorization": "Basic abc"}),
        401,
        "UNAUTHENTICATED",
    )


async def test_bearer_and_x_api_key_both_work(api: Any, tenant: Any) -> None:
    resp = await api.get("/api/workflow-runs", headers={"x-api-key": tenant.keys[Role.READ]})
    assert resp.status == 200
    resp = await api.get("/api/workflow-runs", headers=tenant.headers(Role.READ))
    assert resp.status == 200


async def test_revoked_key_is_401(api: Any, tenant: Any, pool: asyncpg.Pool) -> None:
    key_id, key = await create_key(pool, tenant.id, Role.READ)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await api.get("/api/workflow-runs", headers=headers)).status == 200
    await revoke_key(pool, key_id)
    await _problem(await api.get("/api/workflow-runs", headers=headers), 401, "INVALID_API_KEY")


async def test_keys_are_stored_hashed(tenant: Any, pool: asyncpg.Pool) -> None:
    stored = await pool.fetch("SELECT key_hash FROM api_keys WHERE tenant = $1", tenant.id)
    hashes = {r["key_hash"] for r in stored}
    assert len(hashes) == 4
    assert not hashes & set(tenant.keys.values())
    assert all(k.startswith("sw_") for k in tenant.keys.values())


async def test_role_lattice(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers(Role.PUBLISH))
    body = {"workflowId": wf, "payload": {}}
    # read cannot write anything
    await _problem(
        await api.post("/api/workflow-runs", json=body, headers=tenant.headers(Role.READ)),
        403,
        "FORBIDDEN",
    )
    # publish does not include manage
    await _problem(
        await api.post("/api/workflow-runs", json=body, headers=tenant.headers(Role.PUBLISH)),
        403,
        "FORBIDDEN",
    )
    # manage does not include publish
    await _problem(
        await api.post(
            "/api/workflow-definitions",
            json={"definition": api.definition()},
            headers=tenant.headers(Role.MANAGE),
        ),
        403,
        "FORBIDDEN",
    )
    run = await api.launch(tenant.headers(Role.MANAGE), wf)
    # cancel and PATCH need admin
    await _problem(
        await api.post(
            f"/api/workflow-runs/{run['runId']}/cancel",
            json={"reason": "not allowed"},
            headers=tenant.headers(Role.MANAGE),
        ),
        403,
        "FORBIDDEN",
    )
    await _problem(
        await api.patch(
            f"/api/workflow-definitions/{wf}",
            json={"isPaused": True},
            headers=tenant.headers(Role.PUBLISH),
        ),
        403,
        "FORBIDDEN",
    )
    # every role reads
    for role in Role:
        resp = await api.get(f"/api/workflow-runs/{run['runId']}", headers=tenant.headers(role))
        assert resp.status == 200


async def test_other_tenants_resources_are_404(api: Any, tenant: Any, other_tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(), wf, {"x": 1}))["runId"]
    theirs = other_tenant.headers()
    for path in (
        f"/api/workflow-runs/{run_id}",
        f"/api/workflow-runs/{run_id}/steps",
        f"/api/workflow-runs/{run_id}/timeline",
        f"/api/workflow-runs/{run_id}/logs",
        f"/api/workflow-runs/{run_id}/summary",
        f"/api/workflow-runs/{run_id}/export",
        f"/api/workflow-definitions/{wf}",
        f"/api/workflow-definitions/{wf}/versions",
        f"/api/workflow-definitions/{wf}/versions/1",
    ):
        resp = await api.get(path, headers=theirs)
        assert resp.status == 404, path
        assert resp.content_type == "application/problem+json"
    for action, body in (("cancel", {"reason": "nope"}), ("replay", {"reason": "nope"})):
        resp = await api.post(f"/api/workflow-runs/{run_id}/{action}", json=body, headers=theirs)
        assert resp.status == 404, action
    resp = await api.post(
        "/api/workflow-runs", json={"workflowId": wf, "payload": {}}, headers=theirs
    )
    assert resp.status == 404
    # their list does not show our run, and nothing of ours changed
    resp = await api.get("/api/workflow-runs", headers=theirs)
    assert (await resp.json())["runs"] == []
    status = await tenant.pool.fetchval(
        "SELECT status FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert status == "RUNNING"


async def test_suspended_tenant_reads_but_cannot_write(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    wf = await api.create_published(tenant.headers())
    await set_suspended(pool, tenant.id, True)
    resp = await api.get(f"/api/workflow-definitions/{wf}", headers=tenant.headers())
    assert resp.status == 200
    await _problem(
        await api.post(
            "/api/workflow-runs", json={"workflowId": wf, "payload": {}}, headers=tenant.headers()
        ),
        403,
        "TENANT_SUSPENDED",
    )
    await _problem(
        await api.post("/api/workflow/events", json={"eventName": "X"}, headers=tenant.headers()),
        403,
        "TENANT_SUSPENDED",
    )
    await set_suspended(pool, tenant.id, False)
    await api.launch(tenant.headers(), wf)
