"""Workflow-task failures: make runs whose Temporal workflow task keeps failing visible.

Each pass, under a session advisory lock (one replica does the pass, the others skip it):

1. List the running workflows of Stepwise runs that Temporal flags with `TemporalReportedProblems`
   (`stepwise_contract.task_failures.FAILING_RUNS_QUERY`, up to `max_runs`).
2. Keep those whose run row is open (`RUNNING`/`WAITING`; a flagged workflow of an ended or unknown
   run is not ours to report), describe each: a pending workflow task on attempt ≥ 2 is failing.
   The failure message is read from history only when a new streak starts (no record, or an
   attempt lower than the recorded one); otherwise only the attempt count is refreshed.
3. Record the failure on the run (`workflow_task_failure_json`); a new streak also writes a WARN
   run log line. Runs recorded earlier that are no longer flagged (the listing was complete) or
   have ended are cleared; a run that recovered while open gets an INFO run log line.

The pass reports `failing` (open runs recorded as failing after it, every replica computes it from
the table) as a gauge; `stepwise_runs_workflow_task_failing` exports it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import msgspec
import structlog
from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.names import run_id_from_workflow_id
from stepwise_contract.platform.run_logs import write_run_log
from stepwise_contract.task_failures import (
    FAILING_RUNS_QUERY,
    WorkflowTaskFailure,
    decode_failure,
)
from temporalio.client import Client

from stepwise_sweeper.connections import PooledConnection
from stepwise_sweeper.job import PassResult
from stepwise_sweeper.task_probe import TaskProbe
from stepwise_sweeper.temporal_errors import describe_error, is_not_found

log = structlog.get_logger("stepwise_sweeper.task_failures")

GAUGE = "workflow_task_failing"

PASS_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('stepwise_sweeper.task_failures', 0))"
PASS_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('stepwise_sweeper.task_failures', 0))"

OPEN_RUNS = """
SELECT run_id, tenant, workflow_task_failure_json
  FROM workflow_runs
 WHERE run_id = ANY($1::uuid[]) AND status IN ('RUNNING', 'WAITING')
   AND ($2::uuid[] IS NULL OR tenant = ANY($2::uuid[]))
"""

RECORD = """
UPDATE workflow_runs SET workflow_task_failure_json = $2
 WHERE run_id = $1 AND status IN ('RUNNING', 'WAITING')
RETURNING run_id
"""

# `$1` NULL: the listing was incomplete, only ended runs are cleared
CLEAR = """
UPDATE workflow_runs SET workflow_task_failure_json = NULL
 WHERE workflow_task_failure_json IS NOT NULL
   AND (status NOT IN ('RUNNING', 'WAITING')
        OR ($1::uuid[] IS NOT NULL AND NOT (run_id = ANY($1::uuid[]))))
   AND ($2::uuid[] IS NULL OR tenant = ANY($2::uuid[]))
RETURNING run_id, tenant, status
"""

COUNT_FAILING = """
SELECT count(*) FROM workflow_runs
 WHERE workflow_task_failure_json IS NOT NULL AND status IN ('RUNNING', 'WAITING')
   AND ($1::uuid[] IS NULL OR tenant = ANY($1::uuid[]))
"""


class TaskFailuresConfig(msgspec.Struct, frozen=True, kw_only=True):
    # flagged workflows handled per pass; beyond it nothing is cleared until the list shrinks
    max_runs: int = 500
    temporal_timeout_s: float = 10.0
    concurrency: int = 16
    # only these tenants' runs (None = all): isolates tests sharing a database
    tenants: tuple[uuid.UUID, ...] | None = None


class _Flagged(msgspec.Struct, frozen=True):
    run_id: uuid.UUID
    temporal_run_id: str
    workflow_id: str


class TaskFailuresJob:
    name = "task_failures"

    def __init__(self, pool: asyncpg.Pool, client: Client, config: TaskFailuresConfig) -> None:
        self._pool = pool
        self._config = config
        self._probe = TaskProbe(client, timeout_s=config.temporal_timeout_s)
        self._client = client
        self._tenants = list(config.tenants) if config.tenants is not None else None

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        counts: dict[str, int] = {}
        async with self._pool.acquire() as conn:
            if await conn.fetchval(PASS_LOCK):
                try:
                    await self._sweep(conn, counts)
                finally:
                    await conn.fetchval(PASS_UNLOCK)
            else:
                counts["busy"] = 1
            failing = await conn.fetchval(COUNT_FAILING, self._tenants)
        return PassResult(counts=counts, gauges={GAUGE: failing}, stopped_early=stop.is_set())

    async def _sweep(self, conn: PooledConnection, counts: dict[str, int]) -> None:
        flagged: list[_Flagged] | None = None
        try:
            flagged = await self._list_flagged()
        except Exception as exc:
            log.warning("task_failures_list_failed", error=describe_error(exc))
            counts["temporal_unavailable"] = 1
        failing: list[uuid.UUID] = []
        if flagged is not None:
            rows = {
                row["run_id"]: row
                for row in await conn.fetch(OPEN_RUNS, [f.run_id for f in flagged], self._tenants)
            }
            limit = asyncio.Semaphore(self._config.concurrency)

            async def check(item: _Flagged) -> str:
                async with limit:
                    return await self._check(item, rows[item.run_id])

            mine = [f for f in flagged if f.run_id in rows]
            for item, outcome in zip(
                mine, await asyncio.gather(*(check(f) for f in mine)), strict=True
            ):
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome != "not_failing":
                    failing.append(item.run_id)
        complete = flagged is not None and len(flagged) < self._config.max_runs
        cleared = await conn.fetch(CLEAR, failing if complete else None, self._tenants)
        for row in cleared:
            if row["status"] in ("RUNNING", "WAITING"):
                await write_run_log(
                    self._pool, LogSource.SWEEPER,
                    tenant=row["tenant"], run_id=row["run_id"], level=LogLevel.INFO,
                    message="Workflow task recovered: the run's workflow tasks complete again",
                )  # fmt: skip
                log.info("workflow_task_recovered", run_id=str(row["run_id"]))
        if cleared:
            counts["cleared"] = len(cleared)

    async def _list_flagged(self) -> list[_Flagged]:
        out: list[_Flagged] = []
        async for execution in self._client.list_workflows(
            FAILING_RUNS_QUERY,
            limit=self._config.max_runs,
            rpc_timeout=timedelta(seconds=self._config.temporal_timeout_s),
        ):
            raw = run_id_from_workflow_id(execution.id)
            try:
                run_id = uuid.UUID(raw) if raw is not None else None
            except ValueError:
                run_id = None  # a workflow under our prefix that no Stepwise run owns
            if run_id is not None:
                out.append(_Flagged(run_id, execution.run_id, execution.id))
        return out

    async def _check(self, item: _Flagged, row: asyncpg.Record) -> str:
        """Describe one flagged run and record what is found: `recorded` (new streak),
        `updated` (attempts changed), `unchanged`, `not_failing` or `check_error`."""
        with structlog.contextvars.bound_contextvars(
            tenant=str(row["tenant"]), run_id=str(item.run_id)
        ):
            known = decode_failure(row["workflow_task_failure_json"])
            try:
                attempts = await self._probe.pending_attempt(item.workflow_id, item.temporal_run_id)
                if attempts is None:
                    return "not_failing"
                # the attempt only grows within a streak; a new streak starts again at 2
                if known is not None and attempts >= known.attempts:
                    if known.attempts == attempts:
                        return "unchanged"
                    await self._pool.fetchval(
                        RECORD, item.run_id, msgspec.structs.replace(known, attempts=attempts)
                    )
                    return "updated"
                failure = await self._probe.failure(
                    item.workflow_id, item.temporal_run_id, attempts
                )
            except Exception as exc:
                if is_not_found(exc):
                    return "not_failing"
                log.warning("task_failure_check_failed", error=describe_error(exc))
                # keep what was recorded: unknown is not recovered
                return "check_error"
            await self._record_new(row, failure)
            return "recorded"

    async def _record_new(self, row: asyncpg.Record, failure: WorkflowTaskFailure) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(RECORD, row["run_id"], failure) is None:
                return  # the run ended meanwhile
            await write_run_log(
                conn, LogSource.SWEEPER,
                tenant=row["tenant"], run_id=row["run_id"], level=LogLevel.WARN,
                message=f"Workflow task failing (attempt {failure.attempts}): {failure.message}",
                context={"attempts": failure.attempts, "since": failure.since.isoformat(),
                         "cause": failure.cause},
            )  # fmt: skip
        log.warning("workflow_task_failing", attempts=failure.attempts, cause=failure.cause,
                    message=failure.message)  # fmt: skip
