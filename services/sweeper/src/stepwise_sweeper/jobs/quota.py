"""Quota resume scan: resume quota-paused runs, oldest first, while their tenant has capacity.

A run paused for quota (SPEC §5.5) is `WAITING` with an open `quota` wait. Capacity is the tenant's
`step_quota_limit` (NULL = unlimited) minus `used_count` of the usage period containing now. For as
many runs as there is capacity — one unit per run: the resumed step reserves exactly one — the
oldest waits are resolved, their runs set `RUNNING` (`error_json` cleared) with a run log row, and
the `workflowRuntimeV2QuotaResume` signal is sent; the worker re-reserves on resume and, should the
capacity be gone by then, pauses again with a new wait.

Replicas: a tenant is scanned under a session advisory lock taken with `pg_try_advisory_lock`, so
two sweepers never compute the same capacity twice and overshoot it; the other replica skips the
tenant. Claimed rows are locked (`FOR UPDATE ... SKIP LOCKED`) while their signals are sent and only
the waits whose signal was delivered are resolved, so a failed signal leaves the run for a later
pass (a run whose workflow no longer exists is failed by launch reconciliation). Suspended tenants
are skipped: their runs stay paused until the tenant is reinstated.

Between this scan and the worker's re-reservation, `used_count` does not yet include the resumed
runs; a second pass inside that window (seconds, against a 300 s interval) could count the same
capacity again. The worker's reservation stays the authority: an overshoot only re-pauses runs.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import msgspec
import structlog
from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.names import SIGNAL_QUOTA_RESUME, workflow_id_for
from stepwise_contract.payloads import QuotaResumeSignal
from stepwise_contract.platform.run_logs import write_run_log
from temporalio.client import Client

from stepwise_sweeper.connections import PooledConnection
from stepwise_sweeper.job import PassResult
from stepwise_sweeper.temporal_errors import describe_error, is_not_found

log = structlog.get_logger("stepwise_sweeper.quota")

RESUMED_BY = "sweeper"
REASON = "quota_available"

TENANTS_WITH_PAUSED_RUNS = """
SELECT tenant, min(created_at) AS oldest
  FROM workflow_run_waits
 WHERE wait_type = 'quota' AND status = 'WAITING'
   AND ($2::uuid[] IS NULL OR tenant = ANY($2::uuid[]))
 GROUP BY tenant
 ORDER BY oldest
 LIMIT $1
"""

TENANT_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('stepwise_sweeper.quota:' || $1, 0))"
TENANT_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('stepwise_sweeper.quota:' || $1, 0))"

TENANT_CAPACITY = """
SELECT t.step_quota_limit, t.suspended,
       COALESCE((SELECT p.used_count FROM workflow_step_usage_periods p
                  WHERE p.tenant = t.tenant AND p.period_start <= now() AND p.period_end > now()
                  ORDER BY p.period_start DESC
                  LIMIT 1), 0) AS used_count
  FROM tenants t
 WHERE t.tenant = $1
"""

CLAIM_PAUSED = """
SELECT w.wait_id, w.run_id, w.step_path, w.created_at
  FROM workflow_run_waits w
  JOIN workflow_runs r ON r.run_id = w.run_id
 WHERE w.tenant = $1 AND w.wait_type = 'quota' AND w.status = 'WAITING'
   AND r.tenant = $1 AND r.status = 'WAITING'
   AND NOT (w.run_id = ANY($3::uuid[]))
 ORDER BY w.created_at, w.wait_id
 LIMIT $2
   FOR UPDATE OF w, r SKIP LOCKED
"""

RESOLVE_WAITS = """
UPDATE workflow_run_waits SET status = 'RESOLVED', resolved_at = now()
 WHERE wait_id = ANY($1::uuid[]) AND status = 'WAITING'
"""

RESUME_RUNS = """
UPDATE workflow_runs SET status = 'RUNNING', error_json = NULL, updated_at = now()
 WHERE run_id = ANY($1::uuid[]) AND status = 'WAITING'
"""


class QuotaConfig(msgspec.Struct, frozen=True, kw_only=True):
    # runs claimed (and signalled concurrently) per transaction
    batch_size: int = 100
    tenants_per_pass: int = 500
    signal_timeout_s: float = 10.0
    # only these tenants (None = all): isolates tests sharing a database
    tenants: tuple[uuid.UUID, ...] | None = None


class QuotaJob:
    name = "quota"

    def __init__(self, pool: asyncpg.Pool, client: Client, config: QuotaConfig) -> None:
        self._pool = pool
        self._client = client
        self._config = config

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        counts: dict[str, int] = {}
        scope = list(self._config.tenants) if self._config.tenants is not None else None
        tenants = await self._pool.fetch(
            TENANTS_WITH_PAUSED_RUNS, self._config.tenants_per_pass, scope
        )
        for row in tenants:
            if stop.is_set():
                return PassResult(counts=counts, stopped_early=True)
            with structlog.contextvars.bound_contextvars(tenant=str(row["tenant"])):
                for outcome, n in (await self._scan_tenant(row["tenant"], stop)).items():
                    counts[outcome] = counts.get(outcome, 0) + n
        return PassResult(counts=counts)

    async def _scan_tenant(self, tenant: uuid.UUID, stop: asyncio.Event) -> dict[str, int]:
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(TENANT_LOCK, str(tenant)):
                return {"tenant_busy": 1}
            try:
                return await self._resume_within_capacity(conn, tenant, stop)
            finally:
                await conn.fetchval(TENANT_UNLOCK, str(tenant))

    async def _resume_within_capacity(
        self, conn: PooledConnection, tenant: uuid.UUID, stop: asyncio.Event
    ) -> dict[str, int]:
        limits = await conn.fetchrow(TENANT_CAPACITY, tenant)
        if limits is None:
            return {"tenant_missing": 1}
        if limits["suspended"]:
            return {"tenant_suspended": 1}
        limit: int | None = limits["step_quota_limit"]
        capacity = None if limit is None else max(0, limit - limits["used_count"])
        counts = {"resumed": 0, "signal_failed": 0}
        # runs whose signal failed in this pass are not retried until the next pass
        failed_runs: list[uuid.UUID] = []
        while (capacity is None or capacity > 0) and not stop.is_set():
            wanted = (
                self._config.batch_size
                if capacity is None
                else min(capacity, self._config.batch_size)
            )
            resumed, failed, claimed = await self._resume_batch(conn, tenant, wanted, failed_runs)
            counts["resumed"] += resumed
            counts["signal_failed"] += len(failed)
            failed_runs.extend(failed)
            if capacity is not None:
                capacity -= resumed
            if claimed < wanted or resumed == 0:
                break
        if capacity == 0:
            counts["no_capacity"] = 1
        return counts

    async def _resume_batch(
        self, conn: PooledConnection, tenant: uuid.UUID, wanted: int, skip: list[uuid.UUID]
    ) -> tuple[int, list[uuid.UUID], int]:
        """Claim up to `wanted` paused runs, signal them, resolve those signalled:
        (resumed, runs whose signal failed, rows claimed)."""
        async with conn.transaction():
            claimed = await conn.fetch(CLAIM_PAUSED, tenant, wanted, skip)
            # one unit per run even if a run had several open quota waits
            firsts: dict[uuid.UUID, asyncpg.Record] = {}
            for row in claimed:
                firsts.setdefault(row["run_id"], row)
            waits = list(firsts.values())
            delivered = await asyncio.gather(*(self._signal(row) for row in waits))
            resumed = [row for row, ok in zip(waits, delivered, strict=True) if ok]
            if resumed:
                await conn.execute(RESOLVE_WAITS, [row["wait_id"] for row in resumed])
                await conn.execute(RESUME_RUNS, [row["run_id"] for row in resumed])
                for row in resumed:
                    await write_run_log(
                        conn, LogSource.SWEEPER,
                        tenant=tenant, run_id=row["run_id"], level=LogLevel.INFO,
                        message="Quota wait resolved by the sweeper's scan: capacity available",
                        context={"waitId": str(row["wait_id"]), "resumedBy": RESUMED_BY},
                        step_path=row["step_path"],
                    )  # fmt: skip
        for row in resumed:
            log.info("quota_run_resumed", run_id=str(row["run_id"]), wait_id=str(row["wait_id"]))
        failed = [row["run_id"] for row, ok in zip(waits, delivered, strict=True) if not ok]
        return len(resumed), failed, len(claimed)

    async def _signal(self, row: asyncpg.Record) -> bool:
        handle = self._client.get_workflow_handle(workflow_id_for(str(row["run_id"])))
        signal = QuotaResumeSignal(
            wait_id=str(row["wait_id"]), reason=REASON, resumed_by=RESUMED_BY
        )
        try:
            await handle.signal(
                SIGNAL_QUOTA_RESUME, signal,
                rpc_timeout=timedelta(seconds=self._config.signal_timeout_s),
            )  # fmt: skip
        except Exception as exc:
            log.warning("quota_resume_signal_failed", run_id=str(row["run_id"]),
                        workflow_missing=is_not_found(exc), error=describe_error(exc))  # fmt: skip
            return False
        return True
