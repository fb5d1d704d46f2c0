"""Launch reconciliation: the guard behind "every accepted run is executed, or visibly fails".

A run row is written before its Temporal start (`stepwise_contract.platform.launch`), so a crash
between the two leaves a `RUNNING` row with `temporal_run_id IS NULL`. Each pass:

1. **Unstarted runs** older than the grace period are claimed one by one (`FOR UPDATE SKIP LOCKED`,
   one short transaction each, so replicas never try the same run at once) and started with the
   platform's idempotent `start_run` (same workflow id: a start that did happen is found, not
   duplicated), then `record_started`. Each try increments `launch_attempts`. A start the server
   rejects outright, or one still failing past the deadline, marks the run `FAILED` with
   `stage: "launch"`, a run log row and a log line. After one transient failure the pass stops
   calling Temporal (it is down) and only fails runs past their deadline.

   Child runs (`parent_run_id` set) are started by their parent's workflow as Temporal child
   workflows; starting one here as a top-level workflow would take its workflow id away from the
   parent. So for a child the sweeper only adopts an existing execution (the worker started it but
   has not recorded it yet) or, once the parent run has ended, fails it — never starts it.

2. **Lost runs**: `RUNNING`/`WAITING` runs that were started (`temporal_run_id` set) and are older
   than the grace period are described in Temporal, a bounded slice per pass (a cursor walks the
   open runs across passes). A workflow that does not exist at all fails the run with
   `stage: "launch"`; one terminated or timed out in Temporal (the worker could not record that)
   fails it with `stage: "execution"`. The namespace is checked first, so a misconfigured namespace
   reads as "Temporal unavailable", never as thousands of missing workflows.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import structlog
from stepwise_contract.enums import ErrorCategory, LogLevel, LogSource
from stepwise_contract.names import workflow_id_for
from stepwise_contract.platform.launch import (
    mark_launch_failed,
    priority_of,
    record_started,
    run_input_for,
    start_run,
)
from stepwise_contract.platform.run_logs import write_run_log
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus

from stepwise_sweeper.connections import PooledConnection
from stepwise_sweeper.job import PassResult
from stepwise_sweeper.temporal_errors import describe_error, is_not_found, is_permanent

log = structlog.get_logger("stepwise_sweeper.reconcile")

CLAIM_UNSTARTED = """
SELECT run_id, tenant, workflow_id, workflow_version, trigger_type, trigger_fire_key,
       idempotency_key, parent_run_id, root_run_id, launch_attempts, priority,
       COALESCE((SELECT fairness_weight FROM tenants t WHERE t.tenant = workflow_runs.tenant),
                1.0) AS fairness_weight,
       extract(epoch FROM now() - started_at)::float8 AS age_s
  FROM workflow_runs
 WHERE status = 'RUNNING' AND temporal_run_id IS NULL AND engine = 'temporal'
   AND started_at < now() - make_interval(secs => $1)
   AND NOT (run_id = ANY($2::uuid[]))
   AND ($3::uuid[] IS NULL OR tenant = ANY($3::uuid[]))
 ORDER BY started_at
 LIMIT 1
   FOR UPDATE SKIP LOCKED
"""

COUNT_ATTEMPT = """
UPDATE workflow_runs SET launch_attempts = launch_attempts + 1, updated_at = now()
 WHERE run_id = $1
RETURNING launch_attempts
"""

PARENT_STATUS = "SELECT status FROM workflow_runs WHERE run_id = $1"

OPEN_STARTED_RUNS = """
SELECT run_id, tenant, status
  FROM workflow_runs
 WHERE status IN ('RUNNING', 'WAITING') AND engine = 'temporal' AND temporal_run_id IS NOT NULL
   AND started_at < now() - make_interval(secs => $1)
   AND run_id > $2
   AND ($4::uuid[] IS NULL OR tenant = ANY($4::uuid[]))
 ORDER BY run_id
 LIMIT $3
"""

LOCK_OPEN_RUN = """
SELECT run_id FROM workflow_runs
 WHERE run_id = $1 AND status IN ('RUNNING', 'WAITING')
   FOR UPDATE SKIP LOCKED
"""

FAIL_RUN = """
UPDATE workflow_runs
   SET status = 'FAILED', error_json = $2, completed_at = now(), updated_at = now()
 WHERE run_id = $1 AND status IN ('RUNNING', 'WAITING')
"""

_NIL = uuid.UUID(int=0)
_UNPROJECTED_CLOSE = {
    WorkflowExecutionStatus.TERMINATED: ErrorCategory.CANCELLATION,
    WorkflowExecutionStatus.TIMED_OUT: ErrorCategory.TIMEOUT,
}


class ReconcileConfig(msgspec.Struct, frozen=True, kw_only=True):
    grace_s: float = 30.0
    deadline_s: float = 600.0
    # runs tried per pass; the rest wait for the next pass (15 s later by default)
    batch_size: int = 200
    start_timeout_s: float = 10.0
    # open runs described per pass, and how many describes run at once
    check_batch_size: int = 200
    check_concurrency: int = 16
    # only these tenants' runs (None = all): isolates tests sharing a database
    tenants: tuple[uuid.UUID, ...] | None = None


class ReconcileJob:
    name = "reconcile"

    def __init__(self, pool: asyncpg.Pool, client: Client, config: ReconcileConfig) -> None:
        self._pool = pool
        self._client = client
        self._config = config
        self._check_cursor = _NIL
        self._tenants = list(config.tenants) if config.tenants is not None else None

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        counts: dict[str, int] = {}
        if not await self._launch_unstarted(stop, counts):
            return PassResult(counts=counts, stopped_early=True)
        if stop.is_set():
            return PassResult(counts=counts, stopped_early=True)
        await self._check_started(counts)
        return PassResult(counts=counts)

    # -- 1. runs without a Temporal start ---------------------------------------------------

    async def _launch_unstarted(self, stop: asyncio.Event, counts: dict[str, int]) -> bool:
        """Handle up to `batch_size` unstarted runs; False when stopped before the end."""
        seen: list[uuid.UUID] = []
        temporal_error: str | None = None
        for _ in range(self._config.batch_size):
            if stop.is_set():
                return False
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    CLAIM_UNSTARTED, float(self._config.grace_s), seen, self._tenants
                )
                if row is None:
                    return True
                seen.append(row["run_id"])
                with structlog.contextvars.bound_contextvars(
                    tenant=str(row["tenant"]), run_id=str(row["run_id"])
                ):
                    if row["parent_run_id"] is not None:
                        outcome = await self._reconcile_child(conn, row)
                    else:
                        outcome, temporal_error = await self._launch(conn, row, temporal_error)
            counts[outcome] = counts.get(outcome, 0) + 1
        return True

    async def _launch(
        self, conn: PooledConnection, row: asyncpg.Record, temporal_error: str | None
    ) -> tuple[str, str | None]:
        """Start one top-level run, unless Temporal already failed in this pass:
        (outcome, the transient Temporal error known after this run, if any)."""
        run_id: uuid.UUID = row["run_id"]
        age_s: float = row["age_s"]
        attempts: int = row["launch_attempts"]
        if temporal_error is None:
            attempts = await conn.fetchval(COUNT_ATTEMPT, run_id)
            try:
                temporal_run_id = await asyncio.wait_for(
                    start_run(self._client, run_input_for(row), priority_of(row)),
                    self._config.start_timeout_s,
                )
            except Exception as exc:
                if is_permanent(exc):
                    await self._fail_launch(
                        conn, row, attempts,
                        f"Temporal rejected the workflow start: {describe_error(exc)}",
                        category=ErrorCategory.VALIDATION,
                    )  # fmt: skip
                    return "failed", None
                temporal_error = describe_error(exc)
                log.warning("run_launch_retry", attempts=attempts, age_s=round(age_s, 1),
                            error=temporal_error)  # fmt: skip
            else:
                await record_started(conn, run_id, temporal_run_id)
                await write_run_log(
                    conn, LogSource.SWEEPER,
                    tenant=row["tenant"], run_id=run_id, level=LogLevel.WARN,
                    message="Run started by launch reconciliation (it had no Temporal start)",
                    context={"launchAttempts": attempts, "ageSeconds": round(age_s, 1),
                             "temporalRunId": temporal_run_id},
                )  # fmt: skip
                log.info("run_launch_reconciled", attempts=attempts, age_s=round(age_s, 1),
                         temporal_run_id=temporal_run_id)  # fmt: skip
                return "started", None
        if age_s < self._config.deadline_s:
            return "retry_later", temporal_error
        await self._fail_launch(
            conn, row, attempts,
            f"Run could not be started within {self._config.deadline_s:g} s "
            f"(last error: {temporal_error})",
        )  # fmt: skip
        return "failed", temporal_error

    async def _reconcile_child(self, conn: PooledConnection, row: asyncpg.Record) -> str:
        run_id: uuid.UUID = row["run_id"]
        try:
            description = await self._describe(run_id)
        except Exception as exc:
            if not is_not_found(exc):
                log.warning("child_run_describe_failed", error=describe_error(exc))
                return "retry_later"
        else:
            await record_started(conn, run_id, description.run_id)
            log.info("child_run_adopted", temporal_run_id=description.run_id)
            return "adopted"
        parent_status = await conn.fetchval(PARENT_STATUS, row["parent_run_id"])
        if parent_status in ("RUNNING", "WAITING"):
            # The parent's workflow still owns this start.
            return "child_pending"
        await self._fail_launch(
            conn, row, row["launch_attempts"],
            f"Child run was never started and its parent run is {parent_status or 'gone'}",
        )  # fmt: skip
        return "failed"

    async def _fail_launch(
        self,
        conn: PooledConnection,
        row: asyncpg.Record,
        attempts: int,
        message: str,
        *,
        category: ErrorCategory = ErrorCategory.TRANSIENT,
    ) -> None:
        context = {"launchAttempts": attempts, "ageSeconds": round(row["age_s"], 1)}
        await mark_launch_failed(
            conn,
            row["run_id"],
            message,
            category=category.value,
            extra={"source": "sweeper"},
        )
        await write_run_log(
            conn, LogSource.SWEEPER,
            tenant=row["tenant"], run_id=row["run_id"], level=LogLevel.ERROR,
            message=message, context={"stage": "launch", **context},
        )  # fmt: skip
        log.error("run_launch_failed", reason=message, attempts=attempts,
                  age_s=round(row["age_s"], 1))  # fmt: skip

    # -- 2. started runs whose workflow is gone ---------------------------------------------

    async def _check_started(self, counts: dict[str, int]) -> None:
        try:
            await self._client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=self._client.namespace),
                timeout=timedelta(seconds=self._config.start_timeout_s),
            )
        except Exception as exc:
            log.warning("temporal_unavailable", error=describe_error(exc))
            counts["check_skipped"] = 1
            return
        rows = await self._pool.fetch(
            OPEN_STARTED_RUNS, float(self._config.grace_s), self._check_cursor,
            self._config.check_batch_size, self._tenants,
        )  # fmt: skip
        # Walk the open runs across passes; start over when the end is reached.
        full = len(rows) == self._config.check_batch_size
        self._check_cursor = rows[-1]["run_id"] if full else _NIL
        limit = asyncio.Semaphore(self._config.check_concurrency)

        async def check(row: asyncpg.Record) -> str:
            async with limit:
                return await self._check_one(row)

        for outcome in await asyncio.gather(*(check(row) for row in rows)):
            counts[outcome] = counts.get(outcome, 0) + 1

    async def _check_one(self, row: asyncpg.Record) -> str:
        run_id: uuid.UUID = row["run_id"]
        with structlog.contextvars.bound_contextvars(tenant=str(row["tenant"]), run_id=str(run_id)):
            try:
                description = await self._describe(run_id)
            except Exception as exc:
                if not is_not_found(exc):
                    return "check_error"
                return await self._fail_lost(
                    row, "launch", ErrorCategory.TRANSIENT,
                    "Run's Temporal workflow does not exist; it can never progress",
                    {"workflowId": workflow_id_for(str(run_id))},
                )  # fmt: skip
            temporal_status = description.status
            category = (
                _UNPROJECTED_CLOSE.get(temporal_status) if temporal_status is not None else None
            )
            if category is None or not self._closed_long_ago(description):
                return "checked"
            status = temporal_status.name if temporal_status is not None else "CLOSED"
            return await self._fail_lost(
                row, "execution", category,
                f"Run's Temporal workflow was {status.lower().replace('_', ' ')} outside Stepwise",
                {"workflowId": description.id, "temporalRunId": description.run_id,
                 "temporalStatus": status},
            )  # fmt: skip

    def _closed_long_ago(self, description: WorkflowExecutionDescription) -> bool:
        closed = description.close_time
        grace = timedelta(seconds=self._config.grace_s)
        return closed is not None and closed < datetime.now(UTC) - grace

    async def _fail_lost(
        self,
        row: asyncpg.Record,
        stage: str,
        category: ErrorCategory,
        message: str,
        details: dict[str, Any],
    ) -> str:
        error = {"category": category.value, "message": message, "stage": stage,
                 "source": "sweeper", **details}  # fmt: skip
        async with self._pool.acquire() as conn, conn.transaction():
            # Skip a run someone else holds: whoever it is, it is not lost.
            if await conn.fetchval(LOCK_OPEN_RUN, row["run_id"]) is None:
                return "checked"
            await conn.execute(FAIL_RUN, row["run_id"], error)
            await write_run_log(
                conn, LogSource.SWEEPER,
                tenant=row["tenant"], run_id=row["run_id"], level=LogLevel.ERROR,
                message=message, context={"stage": stage, **details},
            )  # fmt: skip
        log.error("run_lost", stage=stage, reason=message, previous_status=row["status"], **details)
        return "lost"

    async def _describe(self, run_id: uuid.UUID) -> WorkflowExecutionDescription:
        handle = self._client.get_workflow_handle(workflow_id_for(str(run_id)))
        return await handle.describe(rpc_timeout=timedelta(seconds=self._config.start_timeout_s))
