"""Human tasks (SPEC §7): list, complete (validated against the form schema, then the run is
signalled; already done → 409, unknown → 404)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.enums import Role
from stepwise_contract.names import SIGNAL_HUMAN_TASK, workflow_id_for
from stepwise_contract.payloads import HumanTaskSignal
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

FORM = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


async def _task(
    api: Any,
    tenant: Any,
    pool: asyncpg.Pool,
    *,
    form: dict[str, Any] | None = FORM,
    status: str = "PENDING",
) -> tuple[str, str]:
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(), wf))["runId"]
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_tasks (task_id, tenant, run_id, step_path, task_type, title,"
        " context_data, form_schema, status)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'approval', 'Approve?', $4, $5, $6)",
        task_id, tenant.id, uuid.UUID(run_id), {"secretCode": "s", "amount": 5}, form, status,
    )  # fmt: skip
    return str(task_id), run_id


async def test_complete_validates_then_signals(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    task_id, run_id = await _task(api, tenant, pool)
    url = f"/api/workflow/tasks/{task_id}/complete"
    resp = await api.post(
        url, json={"payload": {"approved": "yes"}}, headers=tenant.headers(Role.MANAGE)
    )
    assert resp.status == 400
    problem = await resp.json()
    assert problem["code"] == "PAYLOAD_INVALID" and problem["errors"][0]["path"] == "/approved"
    assert (
        await pool.fetchval(
            "SELECT status FROM workflow_tasks WHERE task_id = $1", uuid.UUID(task_id)
        )
        == "PENDING"
    )

    resp = await api.post(
        url, json={"payload": {"approved": True}}, headers=tenant.headers(Role.MANAGE)
    )
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "taskId": task_id, "runId": run_id}
    row = await pool.fetchrow(
        "SELECT status, response_json, completed_at FROM workflow_tasks WHERE task_id = $1",
        uuid.UUID(task_id),
    )
    assert row is not None
    assert row["status"] == "COMPLETED" and row["response_json"] == {"approved": True}
    history = await temporal_client.get_workflow_handle(workflow_id_for(run_id)).fetch_history()
    signaled = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert [s.signal_name for s in signaled] == [SIGNAL_HUMAN_TASK]
    [sent] = await DATA_CONVERTER.decode(signaled[0].input.payloads, [HumanTaskSignal])
    assert sent == HumanTaskSignal(task_id=task_id, payload={"approved": True})

    resp = await api.post(url, json={"payload": {"approved": True}}, headers=tenant.headers())
    assert resp.status == 409 and (await resp.json())["code"] == "TASK_NOT_PENDING"


async def test_unknown_canceled_and_foreign_tasks(
    api: Any, tenant: Any, other_tenant: Any, pool: asyncpg.Pool
) -> None:
    resp = await api.post(
        f"/api/workflow/tasks/{uuid.uuid4()}/complete",
        json={"payload": {}},
        headers=tenant.headers(),
    )
    assert resp.status == 404 and (await resp.json())["code"] == "TASK_NOT_FOUND"
    canceled, _ = await _task(api, tenant, pool, status="CANCELED")
    resp = await api.post(
        f"/api/workflow/tasks/{canceled}/complete", json={"payload": {}}, headers=tenant.headers()
    )
    assert resp.status == 409
    mine, _ = await _task(api, tenant, pool, form=None)
    resp = await api.post(
        f"/api/workflow/tasks/{mine}/complete", json={"payload": {}}, headers=other_tenant.headers()
    )
    assert resp.status == 404
    resp = await api.post(
        f"/api/workflow/tasks/{mine}/complete",
        json={"payload": {"any": 1}},
        headers=tenant.headers(Role.READ),
    )
    assert resp.status == 403


async def test_list_tasks(api: Any, tenant: Any, pool: asyncpg.Pool) -> None:
    pending, run_id = await _task(api, tenant, pool)
    done, _ = await _task(api, tenant, pool, status="COMPLETED")
    headers = tenant.headers(Role.READ)
    body = await (await api.get("/api/workflow/tasks", headers=headers)).json()
    assert {t["task_id"] for t in body["tasks"]} == {pending, done}
    assert body["tasks"][0]["context_data"] == {"secretCode": "[REDACTED]", "amount": 5}
    body = await (await api.get("/api/workflow/tasks?status=PENDING", headers=headers)).json()
    assert [t["task_id"] for t in body["tasks"]] == [pending]
    body = await (await api.get(f"/api/workflow/tasks?runId={run_id}", headers=headers)).json()
    assert [t["task_id"] for t in body["tasks"]] == [pending]
    page = await (await api.get("/api/workflow/tasks?limit=1", headers=headers)).json()
    rest = await (
        await api.get(f"/api/workflow/tasks?limit=1&cursor={page['nextCursor']}", headers=headers)
    ).json()
    assert {page["tasks"][0]["task_id"], rest["tasks"][0]["task_id"]} == {pending, done}
    assert (await api.get("/api/workflow/tasks?status=NOPE", headers=headers)).status == 400


async def test_get_one_task_redacted_and_tenant_scoped(
    api: Any, tenant: Any, other_tenant: Any, pool: asyncpg.Pool
) -> None:
    task_id, run_id = await _task(api, tenant, pool)
    resp = await api.get(f"/api/workflow/tasks/{task_id}", headers=tenant.headers(Role.READ))
    task = await resp.json()
    assert resp.status == 200 and (task["task_id"], task["run_id"]) == (task_id, run_id)
    assert task["context_data"] == {"secretCode": "[REDACTED]", "amount": 5}
    assert task["form_schema"] == FORM and task["status"] == "PENDING"
    for headers, ref in (
        (other_tenant.headers(), task_id),
        (tenant.headers(), str(uuid.uuid4())),
        (tenant.headers(), "not-a-uuid"),
    ):
        resp = await api.get(f"/api/workflow/tasks/{ref}", headers=headers)
        assert resp.status == 404, await resp.text()
