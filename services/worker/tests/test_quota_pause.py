"""Step quota (SPEC §5.5) on the real dev server: pause without capacity, resume by signal."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from stepwise_contract.names import QUERY_CURRENT_WAIT
from stepwise_contract.payloads import CurrentWait, RunResult
from stepwise_worker.actions.builtin import builtin_actions
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.testing import run_definition
from stepwise_worker.wait_testing import open_wait, resume_quota, wait_for_row
from stepwise_worker.worker import WorkerOptions, build_worker
from temporalio.client import Client
from temporalio.worker import Worker


@pytest.fixture(scope="module")
async def worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    w = build_worker(
        temporal_client, pool, registry=ActionRegistry(builtin_actions()), options=WorkerOptions()
    )
    async with w:
        yield w


async def set_limit(pool: asyncpg.Pool, tenant: str, limit: int | None) -> None:
    await pool.execute(
        "INSERT INTO tenants (tenant, name, step_quota_limit) VALUES ($1, 'q', $2)"
        " ON CONFLICT (tenant) DO UPDATE SET step_quota_limit = excluded.step_quota_limit",
        uuid.UUID(tenant), limit,
    )  # fmt: skip


def assign(step_id: str, name: str) -> dict[str, Any]:
    return {"id": step_id, "type": "transform.assign", "config": {"assign": {f"vars.{name}": True}}}


async def test_quota_pause_then_resume(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    await set_limit(pool, tenant_id, 2)
    steps = [
        {
            "id": "if",
            "type": "control.if",
            "condition": True,
            "then": [assign("a", "a")],
        },  # 2 units
        assign("b", "b"),
        assign("c", "c"),
    ]
    run_id, raw = await run_definition(
        pool, temporal_client, tenant_id, {"name": "q", "steps": steps}
    )
    handle = temporal_client.get_workflow_handle(raw.id, result_type=RunResult)
    rid = uuid.UUID(run_id)

    first = await open_wait(pool, run_id, "quota")
    assert first["step_path"] == "root.steps[1]"
    run = await wait_for_row(
        pool, "SELECT * FROM workflow_runs WHERE run_id = $1 AND status = 'WAITING'", rid
    )
    assert run["node_path"] == "root.steps[1]"
    error = run["error_json"]
    assert (error["category"], error["nodePath"]) == ("QuotaExceeded", "root.steps[1]")
    assert (error["details"]["usedCount"], error["details"]["effectiveLimit"]) == (2, 2)
    steps_rows = await pool.fetch(
        "SELECT step_path, status FROM workflow_run_steps WHERE run_id = $1 ORDER BY started_at",
        rid,
    )
    # the paused step has no row yet; the container counted as a step
    assert [r["step_path"] for r in steps_rows] == ["root.steps[0]", "root.steps[0].then.steps[0]"]
    assert {r["status"] for r in steps_rows} == {"SUCCEEDED"}
    current = await handle.query(QUERY_CURRENT_WAIT, result_type=CurrentWait)
    assert (current.wait_type, current.wait_id) == ("quota", str(first["wait_id"]))

    # resumed without capacity: re-reserving fails, so it pauses again on a new wait
    await resume_quota(handle, str(first["wait_id"]))
    second = await wait_for_row(
        pool,
        "SELECT * FROM workflow_run_waits WHERE run_id = $1 AND wait_type = 'quota'"
        " AND status = 'WAITING' AND wait_id <> $2",
        rid, first["wait_id"],
    )  # fmt: skip
    assert (
        await pool.fetchval(
            "SELECT status FROM workflow_run_waits WHERE wait_id = $1", first["wait_id"]
        )
    ) == "RESOLVED"

    await resume_quota(handle, str(uuid.uuid4()))  # a stale signal for another wait: ignored
    await set_limit(pool, tenant_id, 10)
    await resume_quota(handle, str(second["wait_id"]))
    result = await handle.result()
    assert (result.vars["a"], result.vars["b"], result.vars["c"]) == (True, True, True)
    final = await pool.fetchrow(
        "SELECT status, error_json FROM workflow_runs WHERE run_id = $1", rid
    )
    assert final is not None and (final["status"], final["error_json"]) == ("SUCCEEDED", None)
    assert (
        await pool.fetchval(
            "SELECT status FROM workflow_run_waits WHERE wait_id = $1", second["wait_id"]
        )
    ) == "RESOLVED"
    count = await pool.fetchval("SELECT count(*) FROM workflow_run_steps WHERE run_id = $1", rid)
    used = await pool.fetchval(
        "SELECT used_count FROM workflow_step_usage_periods WHERE tenant = $1", uuid.UUID(tenant_id)
    )
    assert (count, used) == (4, 4)


async def test_unlimited_tenant_is_counted_never_paused(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    await set_limit(pool, tenant_id, None)
    steps = [assign(f"s{i}", f"v{i}") for i in range(5)]
    _run_id, raw = await run_definition(
        pool, temporal_client, tenant_id, {"name": "q", "steps": steps}
    )
    await temporal_client.get_workflow_handle(raw.id, result_type=RunResult).result()
    used = await pool.fetchval(
        "SELECT used_count FROM workflow_step_usage_periods WHERE tenant = $1", uuid.UUID(tenant_id)
    )
    assert used == 5
