"""Errors are problem+json with a stable code everywhere, never a stack trace (SPEC §7)."""

from __future__ import annotations

import uuid
from typing import Any

from stepwise_contract.enums import Role


async def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["code"] == code and body["status"] == status
    assert "Traceback" not in await resp.text()
    return body


async def test_unknown_route_is_problem_404(api: Any, tenant: Any) -> None:
    await _problem(await api.get("/api/nope"), 404, "NOT_FOUND")
    await _problem(await api.get("/api/nope", headers=tenant.headers()), 404, "NOT_FOUND")


async def test_removed_controls_do_not_exist(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(), wf))["runId"]
    for action in ("retry", "resume", "requeue"):
        resp = await api.post(
            f"/api/workflow-runs/{run_id}/{action}",
            json={"reason": "xyz"},
            headers=tenant.headers(),
        )
        await _problem(resp, 404, "NOT_FOUND")


async def test_method_not_allowed_is_problem_405(api: Any, tenant: Any) -> None:
    resp = await api.request("DELETE", "/api/workflow-runs", headers=tenant.headers())
    body = await _problem(resp, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in resp.headers["Allow"]
    assert body["detail"]


async def test_malformed_json_is_400(api: Any, tenant: Any) -> None:
    resp = await api.post(
        "/api/workflow-runs",
        data=b'{"workflowId": ',
        headers={**tenant.headers(), "Content-Type": "application/json"},
    )
    await _problem(resp, 400, "INVALID_JSON")
    resp = await api.put(
        "/api/workflow/schemas/payload.X.v1", data=b"{nope", headers=tenant.headers()
    )
    await _problem(resp, 400, "INVALID_JSON")


async def test_body_of_the_wrong_shape_is_400(api: Any, tenant: Any) -> None:
    resp = await api.post(
        "/api/workflow-runs", json={"workflowId": 5, "extra": 1}, headers=tenant.headers()
    )
    await _problem(resp, 400, "INVALID_BODY")
    resp = await api.post("/api/workflow-runs", json=[1, 2], headers=tenant.headers())
    await _problem(resp, 400, "INVALID_BODY")


async def test_body_over_the_limit_is_413(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    big = {"blob": "x" * (512 * 1024)}
    resp = await api.post(
        "/api/workflow-runs", json={"workflowId": wf, "payload": big}, headers=tenant.headers()
    )
    await _problem(resp, 413, "PAYLOAD_TOO_LARGE")
    count = await tenant.pool.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(wf)
    )
    assert count == 0


async def test_bad_query_parameters_are_400(api: Any, tenant: Any) -> None:
    headers = tenant.headers(Role.READ)
    for query in (
        "limit=0",
        "limit=501",
        "limit=abc",
        "status=BOGUS",
        "from=yesterday",
        "cursor=!!!",
        "sort=name",
        "workflowId=nope",
    ):
        resp = await api.get(f"/api/workflow-runs?{query}", headers=headers)
        assert resp.status == 400, query
        assert resp.content_type == "application/problem+json"


async def test_malformed_ids_are_404(api: Any, tenant: Any) -> None:
    await _problem(
        await api.get("/api/workflow-runs/not-a-uuid", headers=tenant.headers()), 404, "NOT_FOUND"
    )
    await _problem(
        await api.get(f"/api/workflow-runs/{uuid.uuid4()}", headers=tenant.headers()),
        404,
        "RUN_NOT_FOUND",
    )
