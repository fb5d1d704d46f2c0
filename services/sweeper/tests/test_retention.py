"""Run retention: a tenant's terminal runs older than its retention go with everything they own;
recent, running and other tenants' runs stay."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from stepwise_sweeper.jobs.retention import RUN_OWNED_TABLES, RetentionConfig, RetentionJob

OWNED_ROWS = [
    "INSERT INTO workflow_run_steps (step_id, tenant, run_id, step_path, status)"
    " VALUES (gen_random_uuid(), $1, $2, 'root.0', 'SUCCEEDED')",
    "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, status)"
    " VALUES (gen_random_uuid(), $1, $2, 'root.0', 'event', 'RESOLVED')",
    "INSERT INTO workflow_action_invocations (invocation_id, tenant, run_id, step_path, action_id,"
    " action_version, idempotency_key, status)"
    " VALUES (gen_random_uuid(), $1, $2, 'root.0', 'core.echo', 1, gen_random_uuid()::text, 'SUCCEEDED')",
    "INSERT INTO workflow_run_logs (log_id, tenant, run_id, level, message, source)"
    " VALUES (gen_random_uuid(), $1, $2, 'INFO', 'hello', 'runtime')",
    "INSERT INTO workflow_tasks (task_id, tenant, run_id, step_path, task_type, title, status)"
    " VALUES (gen_random_uuid(), $1, $2, 'root.0', 'approve', 'Approve', 'COMPLETED')",
    "INSERT INTO workflow_run_snapshots (snapshot_id, tenant, run_id) VALUES (gen_random_uuid(), $1, $2)",
    "INSERT INTO workflow_payload_blobs (blob_id, tenant, run_id, body, size_bytes)"
    " VALUES (gen_random_uuid(), $1, $2, '{}'::jsonb, 2)",
    "INSERT INTO workflow_payload_claims (tenant, run_id, sha256, body, size_bytes)"
    " VALUES ($1, $2, md5(random()::text), '\\x00'::bytea, 1)",
]


async def _owned(pool: asyncpg.Pool, tenant: uuid.UUID, run_id: uuid.UUID) -> int:
    total = 0
    for table in RUN_OWNED_TABLES:
        total += await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant = $1 AND run_id = $2", tenant, run_id
        )
    return total


async def test_old_terminal_runs_deleted_with_what_they_own(
    pool: asyncpg.Pool, tenant: uuid.UUID, add_run: Any
) -> None:
    await pool.execute("UPDATE tenants SET run_retention_days = 7 WHERE tenant = $1", tenant)
    day = 86400.0
    old_done = [
        await add_run(age_s=10 * day, status=s, completed_at=None)
        for s in ("SUCCEEDED", "FAILED", "CANCELED")
    ]
    for run_id in old_done:
        await pool.execute(
            "UPDATE workflow_runs SET completed_at = now() - interval '9 days' WHERE run_id = $1",
            run_id,
        )
    old_running = await add_run(age_s=10 * day, status="RUNNING", temporal_run_id="r")
    # an old finished child of a parent still running: the parent's history refers to its claims
    child_of_open = await add_run(age_s=10 * day, status="SUCCEEDED", parent_run_id=old_running)
    await pool.execute(
        "UPDATE workflow_runs SET completed_at = now() - interval '9 days' WHERE run_id = $1",
        child_of_open,
    )
    # started long ago, finished recently: judged on its completion
    recently_done = await add_run(age_s=10 * day, status="SUCCEEDED")
    await pool.execute(
        "UPDATE workflow_runs SET completed_at = now() - interval '1 day' WHERE run_id = $1",
        recently_done,
    )
    for run_id in [*old_done, old_running, recently_done, child_of_open]:
        for sql in OWNED_ROWS:
            await pool.execute(sql, tenant, run_id)

    # another tenant without retention keeps its old runs
    other = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (tenant, name) VALUES ($1, 'other')", other)
    other_run = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_runs (run_id, tenant, workflow_id, workflow_version, status,"
        " started_at, completed_at) VALUES ($1, $2, $3, 1, 'SUCCEEDED', now() - interval '400 days',"
        " now() - interval '400 days')",
        other_run, other, uuid.uuid4(),
    )  # fmt: skip

    job = RetentionJob(pool, RetentionConfig(batch_size=2, tenants=(tenant, other)))
    result = await job.run_pass(asyncio.Event())

    assert result.counts["deleted"] == 3
    remaining = {
        r["run_id"]
        for r in await pool.fetch("SELECT run_id FROM workflow_runs WHERE tenant = $1", tenant)
    }
    assert remaining == {old_running, recently_done, child_of_open}
    for run_id in old_done:
        assert await _owned(pool, tenant, run_id) == 0
    assert await _owned(pool, tenant, old_running) == len(OWNED_ROWS)
    assert await _owned(pool, tenant, recently_done) == len(OWNED_ROWS)
    assert await _owned(pool, tenant, child_of_open) == len(OWNED_ROWS)
    assert (
        await pool.fetchval("SELECT count(*) FROM workflow_runs WHERE run_id = $1", other_run) == 1
    )
