"""Migrations: apply to an empty database, re-apply as a no-op, every table and constraint exists;
the stranded-run migration cancels only in-flight runs of the removed engine, and only once."""

from __future__ import annotations

import uuid

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from stepwise_contract.platform.migrate import apply_migrations, connect, load_migrations

TABLES = {
    "tenants",
    "api_keys",
    "tenant_secrets",
    "workflow_payload_schemas",
    "workflow_definitions",
    "workflow_definition_versions",
    "workflow_runs",
    "workflow_run_steps",
    "workflow_run_waits",
    "workflow_action_invocations",
    "workflow_run_snapshots",
    "workflow_runtime_events",
    "workflow_run_logs",
    "workflow_tasks",
    "workflow_data_store",
    "workflow_step_usage_periods",
    "schema_migrations",
}

INDEXES = {
    "workflow_definitions_key_uq",
    "workflow_runs_fire_key_uq",
    "workflow_runs_idempotency_uq",
    "workflow_run_waits_route_idx",
    "workflow_data_store_expires_idx",
}


async def test_migrations_applied_and_idempotent(pool: asyncpg.Pool, database_url: str) -> None:
    migration_conn = await connect(database_url)
    try:
        assert await apply_migrations(migration_conn) == []
    finally:
        await migration_conn.close()
    async with pool.acquire() as conn:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in load_migrations()]
    tables = {
        r["table_name"]
        for r in await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert tables >= TABLES
    indexes = {r["indexname"] for r in await pool.fetch("SELECT indexname FROM pg_indexes")}
    assert indexes >= INDEXES
    uniques = {
        r["conname"]
        for r in await pool.fetch("SELECT conname FROM pg_constraint WHERE contype = 'u'")
    }
    assert any("workflow_action_invocations" in u for u in uniques)
    assert any("workflow_data_store" in u for u in uniques)
    # the partial unique index on the fire key really is partial and unique
    idx = await pool.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'workflow_runs_fire_key_uq'"
    )
    assert "UNIQUE" in idx and "WHERE (trigger_fire_key IS NOT NULL)" in idx


async def _run(
    conn: PoolConnectionProxy[asyncpg.Record], tenant: uuid.UUID, engine: str | None, status: str
) -> uuid.UUID:
    run_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO workflow_runs (run_id, tenant, workflow_id, workflow_version, status, engine,"
        " completed_at) VALUES ($1, $2, $3, 1, $4, $5, CASE WHEN $4 IN ('SUCCEEDED','FAILED')"
        " THEN now() - interval '1 day' END)",
        run_id,
        tenant,
        uuid.uuid4(),
        status,
        engine,
    )
    await conn.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, status)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'event', 'WAITING')",
        uuid.uuid4(),
        tenant,
        run_id,
    )
    return run_id


async def test_stranded_run_migration(pool: asyncpg.Pool) -> None:
    stranded_sql = next(m.sql for m in load_migrations() if m.version == "0002_stranded_runs")
    tenant = uuid.uuid4()
    async with pool.acquire() as conn:
        db_running = await _run(conn, tenant, "db", "RUNNING")
        null_waiting = await _run(conn, tenant, None, "WAITING")
        db_done = await _run(conn, tenant, "db", "SUCCEEDED")
        temporal_running = await _run(conn, tenant, "temporal", "RUNNING")
        before_done = await conn.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", db_done)
        assert before_done is not None

        await conn.execute(stranded_sql)

        for run_id in (db_running, null_waiting):
            row = await conn.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", run_id)
            assert row is not None
            assert row["status"] == "CANCELED"
            assert row["completed_at"] is not None
            err = row["error_json"]
            assert err["stage"] == "migration"
            assert err["migration"] == "0002_stranded_runs"
            assert "DB execution engine was removed" in err["message"]
            wait = await conn.fetchrow("SELECT * FROM workflow_run_waits WHERE run_id = $1", run_id)
            assert wait is not None
            assert wait["status"] == "CANCELED" and wait["resolved_at"] is not None
        after_done = await conn.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", db_done)
        assert after_done is not None
        assert dict(after_done) == dict(before_done)
        row = await conn.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", temporal_running)
        assert row is not None
        assert row["status"] == "RUNNING" and row["error_json"] is None
        for run_id in (db_done, temporal_running):
            wait = await conn.fetchrow(
                "SELECT status FROM workflow_run_waits WHERE run_id = $1", run_id
            )
            assert wait is not None
            assert wait["status"] == "WAITING"

        snapshot = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM workflow_runs WHERE tenant = $1 ORDER BY run_id", tenant
            )
        ]
        await conn.execute(stranded_sql)
        again = [
            dict(r)
            for r in await conn.fetch(
                "SELECT * FROM workflow_runs WHERE tenant = $1 ORDER BY run_id", tenant
            )
        ]
        assert again == snapshot
