"""Postgres projections of a run, as local activities (SPEC §2, §5).

Each activity is ONE SQL statement (data-modifying CTEs), so a step costs one local activity and
one database round trip: the buffered completions of earlier steps, the next step's `STARTED`
row, `workflow_runs.node_path` and any run log lines are written together and atomically. Writes
are idempotent (ids come from the workflow, status-guarded updates), so a local activity run
twice after a worker crash changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
import structlog
from stepwise_contract import dsl
from stepwise_contract.actions import ActionCatalog, action_facts
from stepwise_contract.enums import ErrorCategory, LogSource, StepStatus
from stepwise_contract.platform.run_logs import insert_logs_sql
from temporalio import activity

from stepwise_worker import metrics
from stepwise_worker.activities.legacy_blobs import LegacyBlobs
from stepwise_worker.activities.payload_limit import PayloadTooLarge, check_size
from stepwise_worker.activities.quota_store import quota_ctes, quota_figures, reservation_of
from stepwise_worker.messages import (
    COMPLETE_RUN,
    LOAD_RUN,
    RECORD_STEPS,
    ActionInfo,
    LoadedRun,
    LoadRun,
    Recorded,
    RunDone,
    StepBatch,
    StepDone,
    StepStart,
    action_infos,
)
from stepwise_worker.step_errors import action_error

# Step rows are projections (Temporal holds the truth) written once per step: their commit does
# not wait for the WAL flush. A Postgres crash may lose the last ~0.6 s of them (never a run's
# final status: `complete_run` commits durably), which saves a disk flush per step.
RELAXED_COMMIT = "set_config('synchronous_commit', 'off', true) AS relaxed_commit"

# $1 tenant, $2 run, $3 completions (jsonb), $4 log lines (jsonb)
_DONE_AND_LOGS = f"""
done AS (
    UPDATE workflow_run_steps AS s
    SET status = d.status, error_json = d.error, completed_at = now(),
        duration_ms = GREATEST(0, (extract(epoch FROM (now() - s.started_at)) * 1000)::int)
    FROM jsonb_to_recordset($3::jsonb) AS d(step_id uuid, status text, error jsonb)
    WHERE s.tenant = $1 AND s.step_id = d.step_id AND s.status = 'STARTED'
    RETURNING s.step_type, s.status, s.duration_ms
), logged AS (
    {insert_logs_sql(tenant="$1", run_id="$2", lines="$4", source=LogSource.RUNTIME)}
    RETURNING 1
)"""


# The steps this statement completed (the rows `source` returned), `[step_type, status,
# duration_ms]` each, for the metrics (only rows the status guard let through: a re-executed local
# activity adds none).
def _done_rows(source: str = "done") -> str:
    return (
        "(SELECT coalesce(jsonb_agg(jsonb_build_array(step_type, status, duration_ms)),"
        f" '[]'::jsonb) FROM {source}) AS done_rows"
    )


# The run's final row ($5 status, $6 error, $7 result), written only where `gate` holds.
def _finished(gate: str = "true") -> str:
    return f"""finished AS (
    UPDATE workflow_runs
    SET status = $5, error_json = $6, result_json = $7, node_path = NULL, completed_at = now(),
        updated_at = now()
    WHERE tenant = $1 AND run_id = $2 AND status IN ('RUNNING', 'WAITING') AND {gate}
    RETURNING 1
)"""


# SPEC §5.5: a step start reserves one unit of the tenant's quota in the same
# statement, once per step row (`fresh`: a re-executed local activity does not count twice).
# Without capacity neither the step row nor node_path is written and `quota_refused` is true.
_STEP_ALLOWED = (
    "$5::uuid IS NOT NULL AND (NOT (SELECT yes FROM fresh) OR EXISTS (SELECT 1 FROM reserved))"
)


def _step_row(first: int) -> str:
    """INSERT … SELECT of a step's row from parameters `$first`…: id, step_path, definition
    step id, step_type, attempt, status, error. `STARTED`, or, for a held start, the whole step at
    once (a row inserted by a statement is invisible to that statement's `done` update)."""
    step_id, path, definition_id, step_type, attempt, status, error = (
        f"${first + i}" for i in range(7)
    )
    return f"""
    INSERT INTO workflow_run_steps (
        step_id, tenant, run_id, step_path, definition_step_id, step_type, status, attempt,
        error_json, completed_at, duration_ms
    )
    SELECT {step_id}, $1, $2, {path}, {definition_id}, {step_type}, {status}::text,
           {attempt}::int, {error}::jsonb, CASE WHEN {status} <> 'STARTED' THEN now() END,
           CASE WHEN {status} <> 'STARTED' THEN 0 END"""


RECORD_STEPS_SQL = f"""
WITH {_DONE_AND_LOGS}, fresh AS (
    SELECT $5::uuid IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM workflow_run_steps WHERE tenant = $1 AND step_id = $5
    ) AS yes
), {quota_ctes("$1", "(SELECT yes FROM fresh)")}, started AS ({_step_row(5)}
    WHERE {_STEP_ALLOWED}
    ON CONFLICT (step_id) DO NOTHING
    RETURNING 1
), moved AS (
    UPDATE workflow_runs SET node_path = $6, updated_at = now()
    WHERE tenant = $1 AND run_id = $2 AND {_STEP_ALLOWED} AND status IN ('RUNNING', 'WAITING')
    RETURNING 1
)
SELECT (SELECT count(*) FROM started) AS started, (SELECT count(*) FROM done) AS completed,
       {_done_rows()},
       (SELECT yes FROM fresh) AND NOT EXISTS (SELECT 1 FROM reserved) AS quota_refused,
       {quota_figures("$1")}, {RELAXED_COMMIT}
"""

COMPLETE_RUN_SQL = f"""
WITH {_DONE_AND_LOGS}, {_finished()}
SELECT (SELECT count(*) FROM done) AS completed, (SELECT count(*) FROM finished) AS finished,
       {_done_rows()}
"""

# The run's completion with a held start (`Bookkeeper.hold_start`): the step's row, complete, and
# its quota unit in the same statement (`_step_row(8)`). Without capacity (`allowed`)
# only the other steps' completions and the log lines are written, as `RECORD_STEPS_SQL` does.
COMPLETE_HELD_SQL = f"""
WITH {_DONE_AND_LOGS}, fresh AS (
    SELECT NOT EXISTS (SELECT 1 FROM workflow_run_steps WHERE tenant = $1 AND step_id = $8) AS yes
), {quota_ctes("$1", "(SELECT yes FROM fresh)")}, allowed AS (
    SELECT NOT (SELECT yes FROM fresh) OR EXISTS (SELECT 1 FROM reserved) AS yes
), held AS ({_step_row(8)}
    WHERE (SELECT yes FROM allowed)
    ON CONFLICT (step_id) DO NOTHING
    RETURNING step_type, status, duration_ms
), {_finished("(SELECT yes FROM allowed)")}
SELECT (SELECT count(*) FROM done) + (SELECT count(*) FROM held) AS completed,
       (SELECT count(*) FROM finished) AS finished,
       {_done_rows("(SELECT * FROM done UNION ALL SELECT * FROM held) AS rows")},
       NOT (SELECT yes FROM allowed) AS quota_refused,
       {quota_figures("$1")}
"""

LOAD_RUN_SQL = """
SELECT r.input_json, r.definition_hash AS run_hash, v.definition_json,
       v.definition_hash AS version_hash, v.version_id IS NOT NULL AS has_version
FROM workflow_runs r
LEFT JOIN workflow_definition_versions v
    ON v.tenant = r.tenant AND v.workflow_id = r.workflow_id AND v.version = r.workflow_version
WHERE r.tenant = $1 AND r.run_id = $2
"""


def _held_end(start: StepStart | None, done: list[StepDone]) -> tuple[StepDone, list[StepDone]]:
    """How a start's row is written: its own completion when the batch carries one (a held start,
    `Bookkeeper.hold_start`; written complete at once), else `STARTED`; and the other
    completions."""
    if start is not None:
        for index, item in enumerate(done):
            if item.step_id == start.step_id:
                return item, done[:index] + done[index + 1 :]
    return _STARTED, done


_STARTED = StepDone(step_id="", status=StepStatus.STARTED)


def _actions_of(definition: Any, catalog: ActionCatalog) -> dict[str, ActionInfo]:
    try:
        decoded = dsl.decode_definition(definition)
    except msgspec.ValidationError:
        return {}  # the workflow reports the decoding error itself
    return action_infos(action_facts(decoded, catalog))


class Projections:
    def __init__(
        self, pool: asyncpg.Pool, *, catalog: ActionCatalog, max_payload_bytes: int
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._legacy = LegacyBlobs(pool)
        self._max_bytes = max_payload_bytes

    def activities(self) -> list[Any]:
        return [self.load_run, self.record_steps, self.complete_run]

    @activity.defn(name=LOAD_RUN)
    async def load_run(self, req: LoadRun) -> LoadedRun:
        """The pinned definition (hash checked) and the run input."""
        with structlog.contextvars.bound_contextvars(tenant=req.tenant_id, run_id=req.run_id):
            return await self._load_run(req)

    async def _load_run(self, req: LoadRun) -> LoadedRun:
        row = await self._pool.fetchrow(
            LOAD_RUN_SQL, uuid.UUID(req.tenant_id), uuid.UUID(req.run_id)
        )
        if row is None:
            raise action_error(
                ErrorCategory.VALIDATION, f"run {req.run_id} not found", code="RUN_NOT_FOUND"
            )
        if not row["has_version"]:
            raise action_error(
                ErrorCategory.VALIDATION,
                f"version {req.workflow_version} of workflow {req.workflow_id} is not published",
                code="VERSION_NOT_FOUND",
            )
        if row["run_hash"] and row["run_hash"] != row["version_hash"]:
            raise action_error(
                ErrorCategory.VALIDATION,
                "pinned workflow definition hash mismatch: the version row changed after launch",
                code="DEFINITION_HASH_MISMATCH",
                details={"runHash": row["run_hash"], "versionHash": row["version_hash"]},
            )
        payload = row["input_json"]
        try:
            check_size(payload, self._max_bytes, "run input")
        except PayloadTooLarge as exc:
            raise action_error(
                ErrorCategory.VALIDATION, str(exc), code="PAYLOAD_TOO_LARGE"
            ) from None
        definition = row["definition_json"]
        return LoadedRun(
            definition=definition,
            definition_hash=row["version_hash"],
            payload=payload,
            actions=_actions_of(definition, self._catalog),
        )

    @activity.defn(name=RECORD_STEPS)
    async def record_steps(self, batch: StepBatch) -> Recorded:
        with structlog.contextvars.bound_contextvars(tenant=batch.tenant_id, run_id=batch.run_id):
            return await self.write_steps(batch)

    async def write_steps(self, batch: StepBatch) -> Recorded:
        """One statement: buffered completions and logs, the next step's start with its quota."""
        start = batch.start
        ending, done = _held_end(start, batch.done)
        row = await self._pool.fetchrow(
            RECORD_STEPS_SQL,
            uuid.UUID(batch.tenant_id),
            uuid.UUID(batch.run_id),
            msgspec.to_builtins(done),
            msgspec.to_builtins(batch.logs),
            uuid.UUID(start.step_id) if start else None,
            start.step_path if start else None,
            start.definition_step_id if start else None,
            start.step_type if start else None,
            start.attempt if start else 1,
            ending.status,
            ending.error,
        )
        assert row is not None
        metrics.record_completed_steps(row["done_rows"])
        return Recorded(
            steps_started=row["started"],
            steps_completed=row["completed"],
            quota=reservation_of(row) if row["quota_refused"] else None,
        )

    @activity.defn(name=COMPLETE_RUN)
    async def complete_run(self, done: RunDone) -> Recorded:
        with structlog.contextvars.bound_contextvars(tenant=done.tenant_id, run_id=done.run_id):
            return await self._complete_run(done)

    async def _complete_run(self, done: RunDone) -> Recorded:
        # a run recorded before the claim-check codec may still carry placeholders
        stored = await self._legacy.materialize(done.tenant_id, done.run_id, done.result)
        tenant, run_id = uuid.UUID(done.tenant_id), uuid.UUID(done.run_id)
        start = done.start
        if start is None:
            row = await self._pool.fetchrow(
                COMPLETE_RUN_SQL,
                tenant,
                run_id,
                msgspec.to_builtins(done.done),
                msgspec.to_builtins(done.logs),
                done.status,
                done.error,
                stored,
            )
        else:
            ending, rest = _held_end(start, done.done)
            row = await self._pool.fetchrow(
                COMPLETE_HELD_SQL,
                tenant,
                run_id,
                msgspec.to_builtins(rest),
                msgspec.to_builtins(done.logs),
                done.status,
                done.error,
                stored,
                uuid.UUID(start.step_id),
                start.step_path,
                start.definition_step_id,
                start.step_type,
                start.attempt,
                ending.status,
                ending.error,
            )
        assert row is not None
        metrics.record_completed_steps(row["done_rows"])
        if start is not None and row["quota_refused"]:
            return Recorded(steps_completed=row["completed"], quota=reservation_of(row))
        if row["finished"]:
            metrics.RUNS_COMPLETED.labels(done.status).inc()
        return Recorded(steps_completed=row["completed"])
