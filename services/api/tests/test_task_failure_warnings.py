"""RUN_WORKFLOW_TASK_FAILING end to end in-process: a run whose Temporal workflow task raises (a
test workflow on a real dev server) shows the warning in the run read and the runs list within
10 s of its start (and in `stepwise runs show`/`runs list` over the same API), the sweeper's gauge counts it, and cancelling it ends the workflow for real:
terminated after the grace period, recorded in the run's logs and error_json."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from stepwise_cli.api_client import ApiClient, ApiConfig
from stepwise_cli.runs_command import runs_list, runs_show
from stepwise_contract.enums import Role
from stepwise_contract.names import workflow_id_for
from stepwise_contract.platform.launch import NewRun, insert_run
from temporalio.client import Client, WorkflowExecutionStatus


async def poll(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.2)


async def _failing_run(pool: asyncpg.Pool, tenant_id: uuid.UUID, failing_tasks: Any) -> str:
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        NewRun(
            run_id=run_id, tenant=tenant_id, workflow_id=uuid.uuid4(), workflow_version=1,
            input_json={}, definition_hash="test",
        ),
    )  # fmt: skip
    temporal_run_id = await failing_tasks.start(run_id)
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2 WHERE run_id = $1", run_id, temporal_run_id
    )
    return str(run_id)


def _failing(warnings: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((w for w in warnings if w["code"] == "RUN_WORKFLOW_TASK_FAILING"), None)


async def test_failing_workflow_task_is_visible_and_cancel_terminates_it(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client, failing_tasks: Any,
    sweeper: Any, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    started = time.monotonic()
    run_id = await _failing_run(pool, tenant.id, failing_tasks)
    headers = tenant.headers()

    async def read_warning() -> dict[str, Any] | None:
        resp = await api.get(f"/api/workflow-runs/{run_id}", headers=headers)
        assert resp.status == 200
        return _failing((await resp.json())["warnings"])

    warning = await poll(read_warning, 10, "warning in the run read")
    assert time.monotonic() - started < 10
    assert warning["error"] == "RuntimeError: workflow code bug on purpose"
    assert warning["attempts"] >= 2
    assert warning["cause"] == "WorkflowWorkerUnhandledFailure"
    assert warning["since"].endswith("Z") or "+" in warning["since"]
    assert "keeps failing" in warning["message"]
    assert "workflow code bug on purpose" in warning["message"]
    # the run is picked up, so the read does not also claim it is queued
    resp = await api.get(f"/api/workflow-runs/{run_id}", headers=headers)
    codes = [w["code"] for w in (await resp.json())["warnings"]]
    assert codes == ["RUN_WORKFLOW_TASK_FAILING"]

    resp = await api.get("/api/workflow-runs?limit=50", headers=headers)
    listed = {r["run_id"]: r for r in (await resp.json())["runs"]}
    assert _failing(listed[run_id]["warnings"]) is not None
    assert "workflow_task_failure_json" not in listed[run_id]

    async def gauge_is(value: float) -> bool:
        # set at the end of each pass, a moment after the record the API reads
        return bool(
            sweeper.registry.get_sample_value("stepwise_runs_workflow_task_failing") == value
        )

    await poll(lambda: gauge_is(1), 5, "the gauge counts the run")

    # the operator CLI over this API: `runs show` prints the warning, `runs list` marks the run
    config = ApiConfig(url=str(api.client.make_url("")).rstrip("/"), key=tenant.keys[Role.ADMIN])
    async with ApiClient(config) as cli:
        await runs_show(argparse.Namespace(run_id=run_id, json=False), cli)
        shown = capsys.readouterr().out
        await runs_list(
            argparse.Namespace(
                limit=50, status=None, waiting_on=None, workflow=None, cursor=None, json=False
            ),
            cli,
        )
        table = capsys.readouterr().out
    assert "⚠ RUN_WORKFLOW_TASK_FAILING: the workflow task keeps failing (attempt" in shown
    assert "RuntimeError: workflow code bug on purpose (since " in shown
    assert any(run_id in line and "RUNNING ⚠" in line for line in table.splitlines())

    canceled_at = time.monotonic()  # before the request: the grace counts from its row update
    resp = await api.post(
        f"/api/workflow-runs/{run_id}/cancel", json={"reason": "stuck"}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    body = await (await api.get(f"/api/workflow-runs/{run_id}", headers=headers)).json()
    assert body["status"] == "CANCELED"
    assert body["warnings"] == []  # an ended run has no warning

    handle = temporal_client.get_workflow_handle(workflow_id_for(run_id))

    async def terminated() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED

    await poll(
        terminated, sweeper.cancel_grace_s + 15, "workflow terminated after the grace period"
    )
    assert time.monotonic() - canceled_at >= sweeper.cancel_grace_s

    async def recorded() -> dict[str, Any] | None:
        # the sweeper terminates first, then records it on the row: a moment apart
        read = await (await api.get(f"/api/workflow-runs/{run_id}", headers=headers)).json()
        found: dict[str, Any] = read
        return found if "workflowTerminated" in (read["error_json"] or {}) else None

    body = await poll(recorded, 15, "the termination recorded on the run")
    assert body["status"] == "CANCELED"
    assert body["error_json"]["reason"] == "stuck"
    assert "did not close" in body["error_json"]["workflowTerminated"]["reason"]
    logs = (await (await api.get(f"/api/workflow-runs/{run_id}/logs", headers=headers)).json())[
        "logs"
    ]
    messages = [(line["level"], line["message"]) for line in logs]
    assert ("WARN", "Run canceled by operator") in messages
    assert any(
        level == "WARN" and message.startswith("Workflow task failing")
        for level, message in messages
    )
    assert any(
        level == "ERROR" and message.startswith("Temporal workflow terminated")
        for level, message in messages
    )

    await poll(lambda: gauge_is(0), 10, "gauge back to 0")
    assert sweeper.registry.get_sample_value("stepwise_sweeper_canceled_runs_terminated_total") == 1


async def test_other_tenant_does_not_see_the_warning(
    api: Any, tenant: Any, other_tenant: Any, pool: asyncpg.Pool
) -> None:
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        NewRun(
            run_id=run_id, tenant=tenant.id, workflow_id=uuid.uuid4(), workflow_version=1,
            input_json={}, definition_hash="test",
        ),
    )  # fmt: skip
    await pool.execute(
        "UPDATE workflow_runs SET workflow_task_failure_json = $2 WHERE run_id = $1",
        run_id, {"message": "Boom: x", "attempts": 4, "since": "2026-01-01T00:00:00Z"},
    )  # fmt: skip
    resp = await api.get(f"/api/workflow-runs/{run_id}", headers=other_tenant.headers())
    assert resp.status == 404
    resp = await api.get("/api/workflow-runs", headers=other_tenant.headers())
    assert (await resp.json())["runs"] == []
    # a malformed record (hand-edited row) never breaks the read: no warning
    await pool.execute(
        "UPDATE workflow_runs SET workflow_task_failure_json = '[1, \"x\"]'::jsonb"
        " WHERE run_id = $1",
        run_id,
    )
    resp = await api.get(f"/api/workflow-runs/{run_id}", headers=tenant.headers())
    assert resp.status == 200
    assert _failing((await resp.json())["warnings"]) is None
