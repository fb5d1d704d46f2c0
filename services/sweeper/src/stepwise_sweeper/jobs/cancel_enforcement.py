"""Cancel enforcement: a canceled run's Temporal workflow is closed, never left running.

The API's cancel asks Temporal to cancel the workflow, marks the row `CANCELED` and sets
`cancel_requested_at`. A workflow whose workflow task keeps failing (a bug, a non-determinism
error, an expression past the deadlock detector) can never process that request: it would keep
running — and keep a worker busy — behind a `CANCELED` row. Each pass claims the runs whose
cancel is older than the grace period, one short transaction each (`FOR UPDATE SKIP LOCKED`, so
replicas never take the same run), and describes the workflow:

- closed, or not found (a run whose start never happened): the mark is cleared (`closed`, `gone`);
- still running: it is terminated with a reason naming the run's cancel, a run log line (ERROR)
  and `error_json.workflowTerminated` record it, and the mark is cleared (`terminated`).

A transient Temporal error leaves the mark for a later pass; after one, the pass stops calling
Temporal (it is down).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import msgspec
import structlog
from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.names import workflow_id_for
from stepwise_contract.platform.run_logs import write_run_log
from temporalio.client import Client, WorkflowExecutionStatus

from stepwise_sweeper.connections import PooledConnection
from stepwise_sweeper.job import PassResult
from stepwise_sweeper.temporal_errors import describe_error, is_not_found

log = structlog.get_logger("stepwise_sweeper.cancel_enforcement")

CLAIM = """
SELECT run_id, tenant, temporal_run_id, cancel_requested_at,
       extract(epoch FROM now() - cancel_requested_at)::float8 AS age_s
  FROM workflow_runs
 WHERE cancel_requested_at IS NOT NULL
   AND cancel_requested_at < now() - make_interval(secs => $1)
   AND NOT (run_id = ANY($2::uuid[]))
   AND ($3::uuid[] IS NULL OR tenant = ANY($3::uuid[]))
 ORDER BY cancel_requested_at
 LIMIT 1
   FOR UPDATE SKIP LOCKED
"""

SETTLE = """
UPDATE workflow_runs SET cancel_requested_at = NULL, workflow_task_failure_json = NULL
 WHERE run_id = $1
"""

RECORD_TERMINATION = """
UPDATE workflow_runs
   SET error_json = COALESCE(error_json, '{}'::jsonb) || jsonb_build_object('workflowTerminated',
                                                                            $2::jsonb),
       updated_at = now()
 WHERE run_id = $1
"""


class CancelEnforcementConfig(msgspec.Struct, frozen=True, kw_only=True):
    # how long a canceled run's workflow may take to close by itself
    grace_s: float = 30.0
    batch_size: int = 100
    temporal_timeout_s: float = 10.0
    # only these tenants' runs (None = all): isolates tests sharing a database
    tenants: tuple[uuid.UUID, ...] | None = None


class CancelEnforcementJob:
    name = "cancel_enforcement"

    def __init__(self, pool: asyncpg.Pool, client: Client, config: CancelEnforcementConfig) -> None:
        self._pool = pool
        self._client = client
        self._config = config
        self._tenants = list(config.tenants) if config.tenants is not None else None

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        counts: dict[str, int] = {}
        seen: list[uuid.UUID] = []
        for _ in range(self._config.batch_size):
            if stop.is_set():
                return PassResult(counts=counts, stopped_early=True)
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(CLAIM, float(self._config.grace_s), seen, self._tenants)
                if row is None:
                    break
                seen.append(row["run_id"])
                with structlog.contextvars.bound_contextvars(
                    tenant=str(row["tenant"]), run_id=str(row["run_id"])
                ):
                    outcome = await self._enforce(conn, row)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome == "retry_later":
                break  # Temporal is failing: the rest waits for the next pass
        return PassResult(counts=counts)

    async def _enforce(self, conn: PooledConnection, row: asyncpg.Record) -> str:
        run_id: uuid.UUID = row["run_id"]
        handle = self._client.get_workflow_handle(
            workflow_id_for(str(run_id)), run_id=row["temporal_run_id"]
        )
        timeout = timedelta(seconds=self._config.temporal_timeout_s)
        reason = (
            f"Stepwise run canceled at {row['cancel_requested_at'].isoformat()}; the workflow did"
            f" not close within {self._config.grace_s:g} s, so the sweeper terminated it"
        )
        try:
            described = await handle.describe(rpc_timeout=timeout)
            if described.status != WorkflowExecutionStatus.RUNNING:
                await conn.execute(SETTLE, run_id)
                return "closed"
            await handle.terminate(reason=reason, rpc_timeout=timeout)
        except Exception as exc:
            if is_not_found(exc):
                await conn.execute(SETTLE, run_id)
                return "gone"
            log.warning("cancel_enforcement_retry", error=describe_error(exc))
            return "retry_later"
        detail = {
            "reason": reason,
            "cancelRequestedAt": row["cancel_requested_at"].isoformat(),
            "graceSeconds": self._config.grace_s,
            "temporalRunId": handle.run_id,
            "source": "sweeper",
        }
        await conn.execute(RECORD_TERMINATION, run_id, detail)
        await conn.execute(SETTLE, run_id)
        await write_run_log(
            conn, LogSource.SWEEPER,
            tenant=row["tenant"], run_id=run_id, level=LogLevel.ERROR,
            message="Temporal workflow terminated: it did not close within "
            f"{self._config.grace_s:g} s of the run's cancel",
            context=detail,
        )  # fmt: skip
        log.error("canceled_run_terminated", age_s=round(row["age_s"], 1),
                  temporal_run_id=handle.run_id)  # fmt: skip
        return "terminated"
