"""Run retention (optional, per tenant): delete terminal runs older than `run_retention_days`.

Only tenants with `tenants.run_retention_days` set are touched. A run goes once it is terminal and
completed before the cut-off; its steps, waits, action invocations, logs, human tasks, snapshots and
stored payloads (claim-checked payloads and the placeholder blobs of older runs) go with it, in one
short transaction per batch of runs claimed with `FOR UPDATE SKIP LOCKED` (replicas take disjoint
batches). Each run is judged on its own dates, so a child run outlives its parent only as long as
its own retention allows — but never goes while its parent is still open: the parent's history
refers to the child's input and result, which may be claim-checked payloads of the child. Events
(`workflow_runtime_events`) are the router's dedupe ledger and are not run-owned: they stay.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
import structlog

from stepwise_sweeper.job import PassResult

log = structlog.get_logger("stepwise_sweeper.retention")

TENANTS_WITH_RETENTION = """
SELECT tenant, run_retention_days FROM tenants
 WHERE run_retention_days IS NOT NULL AND run_retention_days > 0
   AND ($1::uuid[] IS NULL OR tenant = ANY($1::uuid[]))
 ORDER BY tenant
"""

# `started_at` bounds the scan through the (tenant, started_at) index: a run completed before the
# cut-off also started before it.
CLAIM_EXPIRED_RUNS = """
SELECT r.run_id FROM workflow_runs r
 WHERE r.tenant = $1
   AND r.started_at < now() - make_interval(days => $2)
   AND r.status IN ('SUCCEEDED', 'FAILED', 'CANCELED')
   AND r.completed_at < now() - make_interval(days => $2)
   AND NOT EXISTS (
       SELECT 1 FROM workflow_runs p
        WHERE p.run_id = r.parent_run_id AND p.status IN ('RUNNING', 'WAITING')
   )
 ORDER BY r.started_at
 LIMIT $3
   FOR UPDATE SKIP LOCKED
"""

RUN_OWNED_TABLES = (
    "workflow_run_steps",
    "workflow_run_waits",
    "workflow_action_invocations",
    "workflow_run_logs",
    "workflow_tasks",
    "workflow_run_snapshots",
    "workflow_payload_blobs",
    "workflow_payload_claims",
)


class RetentionConfig(msgspec.Struct, frozen=True, kw_only=True):
    batch_size: int = 500
    max_batches_per_pass: int = 200
    # only these tenants (None = all): isolates tests sharing a database
    tenants: tuple[uuid.UUID, ...] | None = None


class RetentionJob:
    name = "retention"

    def __init__(self, pool: asyncpg.Pool, config: RetentionConfig) -> None:
        self._pool = pool
        self._config = config

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        deleted = 0
        batches = 0
        scope = list(self._config.tenants) if self._config.tenants is not None else None
        for tenant in await self._pool.fetch(TENANTS_WITH_RETENTION, scope):
            while batches < self._config.max_batches_per_pass:
                if stop.is_set():
                    return PassResult(counts={"deleted": deleted}, stopped_early=True)
                count = await self._delete_batch(tenant["tenant"], tenant["run_retention_days"])
                batches += 1
                deleted += count
                if count < self._config.batch_size:
                    break
        return PassResult(counts={"deleted": deleted})

    async def _delete_batch(self, tenant: uuid.UUID, days: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(CLAIM_EXPIRED_RUNS, tenant, days, self._config.batch_size)
            run_ids = [row["run_id"] for row in rows]
            if not run_ids:
                return 0
            for table in RUN_OWNED_TABLES:
                await conn.execute(
                    f"DELETE FROM {table} WHERE tenant = $1 AND run_id = ANY($2::uuid[])",
                    tenant, run_ids,
                )  # fmt: skip
            await conn.execute("DELETE FROM workflow_runs WHERE run_id = ANY($1::uuid[])", run_ids)
        log.info("runs_deleted_by_retention", tenant=str(tenant), runs=len(run_ids), days=days)
        return len(run_ids)
