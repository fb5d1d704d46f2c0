"""The API with a real worker process executing the runs (`python -m stepwise_worker`): launch to
SUCCEEDED, a human task completed through the API, cancel of a waiting run, replay with the
original secret-looking input."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from stepwise_contract.enums import Role


async def eventually(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 30.0
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def run_status(api: Any, tenant: Any, run_id: str) -> dict[str, Any]:
    resp = await api.get(f"/api/workflow-runs/{run_id}", headers=tenant.headers(Role.READ))
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def finished(api: Any, tenant: Any, run_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        run = await run_status(api, tenant, run_id)
        return run if run["status"] == status else None

    result: dict[str, Any] = await eventually(probe, f"run {run_id} to be {status}")
    return result


ECHO_PASSWORD = {
    "name": "echo-secret",
    "steps": [
        {
            "id": "echo",
            "type": "action.call",
            "config": {
                "actionId": "core.echo",
                "version": 1,
                "inputMapping": {"value": {"$expr": "payload.password"}},
                "saveAs": "vars.echoed",
            },
        }
    ],
}
APPROVAL = {
    "name": "approval",
    "steps": [
        {
            "id": "ask",
            "type": "human.task",
            "config": {
                "taskType": "approval",
                "title": "Approve?",
                "formSchema": {
                    "type": "object",
                    "required": ["approved"],
                    "properties": {"approved": {"type": "boolean"}},
                },
            },
        },
        {"id": "done", "type": "state.set", "config": {"state": "approved"}},
    ],
}


async def test_launch_executes_to_success(api: Any, tenant: Any, worker: Any) -> None:
    wf = await api.create_published(tenant.headers(), ECHO_PASSWORD)
    run_id = (await api.launch(tenant.headers(), wf, {"password": "hunter2"}))["runId"]
    run = await finished(api, tenant, run_id, "SUCCEEDED")
    assert run["warnings"] == [] and run["input_json"] == {"password": "[REDACTED]"}
    steps = await (
        await api.get(f"/api/workflow-runs/{run_id}/steps", headers=tenant.headers())
    ).json()
    assert [s["status"] for s in steps["steps"]] == ["SUCCEEDED"]
    assert steps["invocations"][0]["action_id"] == "core.echo"
    summary = await (
        await api.get(f"/api/workflow-runs/{run_id}/summary", headers=tenant.headers())
    ).json()
    assert summary["stepsCount"] == 1 and summary["durationMs"] is not None


async def test_replay_runs_with_the_original_input(api: Any, tenant: Any, worker: Any) -> None:
    wf = await api.create_published(tenant.headers(), ECHO_PASSWORD)
    source = (await api.launch(tenant.headers(), wf, {"password": "hunter2", "apiKey": "k"}))[
        "runId"
    ]
    await finished(api, tenant, source, "SUCCEEDED")
    resp = await api.post(
        f"/api/workflow-runs/{source}/replay", json={"reason": "again"}, headers=tenant.headers()
    )
    assert resp.status == 201
    replayed = (await resp.json())["runId"]
    await finished(api, tenant, replayed, "SUCCEEDED")
    # The echo step received the original value (the key `value` is not a sensitive key).
    steps = await (
        await api.get(f"/api/workflow-runs/{replayed}/steps", headers=tenant.headers())
    ).json()
    assert steps["invocations"][0]["input_json"] == {"value": "hunter2"}


async def _pending_task(api: Any, tenant: Any, run_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await (
            await api.get(f"/api/workflow/tasks?runId={run_id}", headers=tenant.headers())
        ).json()
        pending = [t for t in body["tasks"] if t["status"] == "PENDING"]
        return pending[0] if pending else None

    task: dict[str, Any] = await eventually(probe, f"a pending task of run {run_id}")
    return task


async def test_human_task_completed_through_the_api(api: Any, tenant: Any, worker: Any) -> None:
    wf = await api.create_published(tenant.headers(), APPROVAL)
    run_id = (await api.launch(tenant.headers(), wf))["runId"]
    task = await _pending_task(api, tenant, run_id)
    url = f"/api/workflow/tasks/{task['task_id']}/complete"
    resp = await api.post(
        url, json={"payload": {"approved": 1}}, headers=tenant.headers(Role.MANAGE)
    )
    assert resp.status == 400
    resp = await api.post(
        url, json={"payload": {"approved": True}}, headers=tenant.headers(Role.MANAGE)
    )
    assert resp.status == 200
    await finished(api, tenant, run_id, "SUCCEEDED")


async def test_cancel_a_waiting_run(api: Any, tenant: Any, worker: Any, pool: asyncpg.Pool) -> None:
    wf = await api.create_published(tenant.headers(), APPROVAL)
    run_id = (await api.launch(tenant.headers(), wf))["runId"]
    task = await _pending_task(api, tenant, run_id)
    resp = await api.post(
        f"/api/workflow-runs/{run_id}/cancel",
        json={"reason": "no longer needed"},
        headers=tenant.headers(),
    )
    assert resp.status == 200
    await finished(api, tenant, run_id, "CANCELED")
    await asyncio.sleep(1.0)  # the worker's own cancellation projection lands after ours
    assert (await run_status(api, tenant, run_id))["status"] == "CANCELED"
    steps = await (
        await api.get(f"/api/workflow-runs/{run_id}/steps", headers=tenant.headers())
    ).json()
    assert {w["status"] for w in steps["waits"]} == {"CANCELED"}
    assert "STARTED" not in {s["status"] for s in steps["steps"]}
    status = await pool.fetchval(
        "SELECT status FROM workflow_tasks WHERE task_id = $1", uuid.UUID(task["task_id"])
    )
    assert status == "CANCELED"
