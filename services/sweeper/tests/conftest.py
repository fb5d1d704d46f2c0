"""Fixtures of the sweeper tests: a tenant row per test and run rows shaped like the real ones."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from stepwise_contract.platform.launch import NewRun, insert_run

InsertRun = Callable[..., Awaitable[uuid.UUID]]


@pytest.fixture
async def tenant(pool: asyncpg.Pool, tenant_id: str) -> AsyncIterator[uuid.UUID]:
    """A fresh tenant row; its open runs are cancelled afterwards so no later reconciliation pass
    (ours or another suite's) acts on them."""
    tenant = uuid.UUID(tenant_id)
    await pool.execute(
        "INSERT INTO tenants (tenant, name) VALUES ($1, $2)", tenant, f"sweeper-{tenant_id[:8]}"
    )
    yield tenant
    await pool.execute(
        "UPDATE workflow_runs SET status = 'CANCELED', completed_at = now()"
        " WHERE tenant = $1 AND status IN ('RUNNING', 'WAITING')",
        tenant,
    )


@pytest.fixture
def add_run(pool: asyncpg.Pool, tenant: uuid.UUID) -> InsertRun:
    """Insert a run row as the API does (row first, no Temporal start), `age_s` seconds old."""

    async def add(
        *,
        age_s: float = 0.0,
        status: str = "RUNNING",
        temporal_run_id: str | None = None,
        parent_run_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> uuid.UUID:
        run_id = uuid.uuid4()
        await insert_run(
            pool,
            NewRun(
                run_id=run_id,
                tenant=tenant,
                workflow_id=uuid.uuid4(),
                workflow_version=1,
                input_json={"n": 1},
                definition_hash="test",
                parent_run_id=parent_run_id,
                root_run_id=parent_run_id,
            ),
        )
        await pool.execute(
            "UPDATE workflow_runs SET started_at = now() - make_interval(secs => $2), status = $3,"
            " temporal_run_id = $4 WHERE run_id = $1",
            run_id, float(age_s), status, temporal_run_id,
        )  # fmt: skip
        for column, value in fields.items():
            await pool.execute(
                f"UPDATE workflow_runs SET {column} = $2 WHERE run_id = $1", run_id, value
            )
        return run_id

    return add
