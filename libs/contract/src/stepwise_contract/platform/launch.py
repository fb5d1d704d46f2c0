"""Launching a run: the run row first, then the Temporal start — shared by api, router and sweeper.

The row is written before the start so a crash between the two leaves a `RUNNING` row with
`temporal_run_id IS NULL`, which the sweeper's launch reconciliation finds and starts (the start is
idempotent by workflow id) or, past a deadline, marks `FAILED` with `stage: "launch"`. A start that
fails outright marks the run `FAILED` at once. Either way no accepted run is silently stranded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from stepwise_contract.enums import LogSource
from stepwise_contract.names import (
    DEFAULT_EXECUTION_TIMEOUT_S,
    RUN_COMMANDS,
    TASK_QUEUE,
    WORKFLOW_TYPE,
    workflow_id_for,
)
from stepwise_contract.payloads import PreloadedRun, RunInput
from stepwise_contract.platform.db import Executor
from stepwise_contract.platform.run_logs import LogLine, insert_logs_sql
from stepwise_contract.platform.start_recorder import StartRecorder
from stepwise_contract.priority import DEFAULT_PRIORITY, run_priority

log = structlog.get_logger("stepwise.launch")

INSERT_RUN = """
INSERT INTO workflow_runs (
    run_id, tenant, workflow_id, workflow_version, status, input_json, engine,
    temporal_workflow_id, definition_hash, trigger_type, trigger_metadata_json, trigger_fire_key,
    event_type, parent_run_id, root_run_id, idempotency_key, idempotency_hash, node_path, priority
) VALUES ($1, $2, $3, $4, 'RUNNING', $5, 'temporal', $6, $7, $8, $9, $10, $11, $12, $13, $14,
          $15, NULL, $16)
"""

# The row and its first log lines in one statement: atomic without a transaction block, one round
# trip. `INSERT_RUN`'s $1 (run id) and $2 (tenant), the lines as a jsonb array in $17.
_INSERT_RUN_WITH_LOGS: dict[LogSource, str] = {
    source: f"WITH run AS ({INSERT_RUN.strip()} RETURNING 1)"
    + insert_logs_sql(tenant="$2", run_id="$1", lines="$17", source=source)
    for source in LogSource
}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """The row of a new `RUNNING` run (engine 'temporal', no Temporal run id yet)."""

    run_id: uuid.UUID
    tenant: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    input_json: Any
    definition_hash: str | None
    trigger_type: str | None = None
    trigger_metadata: Any = None
    trigger_fire_key: str | None = None
    event_type: str | None = None
    parent_run_id: uuid.UUID | None = None
    root_run_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    idempotency_hash: str | None = None
    priority: int = DEFAULT_PRIORITY

    def args(self) -> list[Any]:
        """`INSERT_RUN`'s parameters $1..$16, also for statements that extend it."""
        return [
            self.run_id, self.tenant, self.workflow_id, self.workflow_version, self.input_json,
            workflow_id_for(str(self.run_id)), self.definition_hash, self.trigger_type,
            self.trigger_metadata, self.trigger_fire_key, self.event_type, self.parent_run_id,
            self.root_run_id or self.run_id, self.idempotency_key, self.idempotency_hash,
            self.priority,
        ]  # fmt: skip

    def run_input(self, preloaded: PreloadedRun | None = None) -> RunInput:
        """The interpreter workflow's input for this run; with `preloaded`, the run's definition
        and input travel with the start instead of being loaded by the workflow."""
        return _run_input(
            run_id=self.run_id,
            tenant=self.tenant,
            workflow_id=self.workflow_id,
            workflow_version=self.workflow_version,
            trigger_type=self.trigger_type,
            execution_key=self.trigger_fire_key or self.idempotency_key,
            parent_run_id=self.parent_run_id,
            root_run_id=self.root_run_id or self.run_id,
            preloaded=preloaded,
        )

    def temporal_priority(self, fairness_weight: float) -> Priority:
        """The Temporal priority of this run in a tenant of `fairness_weight`."""
        return run_priority(
            tenant=str(self.tenant), priority=self.priority, fairness_weight=fairness_weight
        )


async def insert_run(
    conn: Executor,
    run: NewRun,
    *,
    logs: Sequence[LogLine] = (),
    source: LogSource | None = None,
) -> None:
    """Write the run row, with its first log lines (written by `source`) when there are any."""
    if not logs:
        await conn.execute(INSERT_RUN, *run.args())
        return
    if source is None:
        raise ValueError("log lines need the source that writes them")
    await conn.execute(_INSERT_RUN_WITH_LOGS[source], *run.args(), list(logs))


def run_input_for(row: asyncpg.Record | dict[str, Any]) -> RunInput:
    """The workflow input of a run row (a run found in the table, e.g. by reconciliation)."""
    return _run_input(
        run_id=row["run_id"],
        tenant=row["tenant"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        trigger_type=row["trigger_type"],
        execution_key=row["trigger_fire_key"] or row["idempotency_key"],
        parent_run_id=row["parent_run_id"],
        root_run_id=row["root_run_id"],
    )


def _run_input(
    *,
    run_id: uuid.UUID,
    tenant: uuid.UUID,
    workflow_id: uuid.UUID,
    workflow_version: int,
    trigger_type: str | None,
    execution_key: str | None,
    parent_run_id: uuid.UUID | None,
    root_run_id: uuid.UUID | None,
    preloaded: PreloadedRun | None = None,
) -> RunInput:
    return RunInput(
        run_id=str(run_id),
        tenant_id=str(tenant),
        workflow_id=str(workflow_id),
        workflow_version=int(workflow_version),
        trigger_type=trigger_type,
        execution_key=execution_key,
        parent_run_id=str(parent_run_id) if parent_run_id else None,
        root_run_id=str(root_run_id) if root_run_id else None,
        preloaded=preloaded,
        commands=RUN_COMMANDS,
    )


def priority_of(row: asyncpg.Record | dict[str, Any]) -> Priority:
    """The Temporal priority of a run row joined with its tenant's `fairness_weight`."""
    return run_priority(
        tenant=str(row["tenant"]),
        priority=int(row["priority"]),
        fairness_weight=float(row["fairness_weight"]),
    )


async def start_run(client: Client, run_input: RunInput, priority: Priority) -> str:
    """Start the interpreter workflow of a run (idempotent by workflow id); its Temporal run id.

    `priority` (see `priority_of`) puts the run in its tenant's fair share of the task queue.
    """
    workflow_id = workflow_id_for(run_input.run_id)
    try:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            run_input,
            id=workflow_id,
            task_queue=TASK_QUEUE,
            priority=priority,
            execution_timeout=timedelta(seconds=DEFAULT_EXECUTION_TIMEOUT_S),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert handle.result_run_id is not None
        return handle.result_run_id
    except WorkflowAlreadyStartedError:
        # Started before (and already closed): the existing execution is this run's.
        description = await client.get_workflow_handle(workflow_id).describe()
        return description.run_id


async def record_started(pool: Executor, run_id: uuid.UUID, temporal_run_id: str) -> None:
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2, updated_at = now()"
        " WHERE run_id = $1 AND temporal_run_id IS NULL",
        run_id, temporal_run_id,
    )  # fmt: skip


async def mark_launch_failed(
    pool: Executor,
    run_id: uuid.UUID,
    message: str,
    *,
    category: str = "TransientError",
    extra: dict[str, Any] | None = None,
) -> None:
    """The run could not be started: it FAILS visibly with `stage: "launch"`."""
    error = {"category": category, "message": message, "stage": "launch", **(extra or {})}
    await pool.execute(
        "UPDATE workflow_runs SET status = 'FAILED', error_json = $2, completed_at = now(),"
        " updated_at = now() WHERE run_id = $1 AND status IN ('RUNNING', 'WAITING')",
        run_id, error,
    )  # fmt: skip


async def start_recorded(
    pool: asyncpg.Pool, client: Client, run_input: RunInput, priority: Priority
) -> str:
    """Start an already-inserted run and record its Temporal run id; a failed start raises and
    leaves the row unstarted (the caller decides: fail the run, or retry the start later)."""
    temporal_run_id = await start_run(client, run_input, priority)
    await record_started(pool, uuid.UUID(run_input.run_id), temporal_run_id)
    return temporal_run_id


async def launch(
    pool: asyncpg.Pool,
    client: Client,
    run_input: RunInput,
    priority: Priority,
    *,
    recorder: StartRecorder | None = None,
) -> str | None:
    """`start_recorded`, for a caller with no one to retry: a failed start FAILS the run.

    Returns the Temporal run id, or None when the start failed (the run is then FAILED). With a
    `recorder` the run id is written by it, after this returns.
    """
    run_id = uuid.UUID(run_input.run_id)
    try:
        temporal_run_id = await start_run(client, run_input, priority)
    except Exception as exc:
        log.error("run_launch_failed", run_id=run_input.run_id, tenant=run_input.tenant_id,
                  error=str(exc))  # fmt: skip
        await mark_launch_failed(pool, run_id, f"Temporal start failed: {exc}")
        return None
    # Not under the `except` above: a Postgres error here is not a failed start. The run is
    # running; its row learns the Temporal run id from the sweeper's reconciliation.
    if recorder is not None:
        recorder.record(run_id, temporal_run_id)
    else:
        await record_started(pool, run_id, temporal_run_id)
    return temporal_run_id
