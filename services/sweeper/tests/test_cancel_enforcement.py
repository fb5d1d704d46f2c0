"""Cancel enforcement against real Postgres and a real Temporal dev server: a canceled run whose
workflow task keeps failing (so it never processes the cancel) is terminated after the grace
period, with a run log line and `error_json.workflowTerminated`; a workflow that closes by itself
and a run that never started are only settled."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from stepwise_contract.names import workflow_id_for
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_devkit.child_process import free_port
from stepwise_sweeper.jobs.cancel_enforcement import CancelEnforcementConfig, CancelEnforcementJob
from temporalio.client import Client, WorkflowExecutionStatus


async def _cancel(pool: asyncpg.Pool, client: Client, run_id: uuid.UUID, temporal: bool) -> None:
    """What the API's cancel does: Temporal cancel request, then the row."""
    if temporal:
        await client.get_workflow_handle(workflow_id_for(str(run_id))).cancel()
    await pool.execute(
        "UPDATE workflow_runs SET status = 'CANCELED', completed_at = now(),"
        ' error_json = \'{"category": "Cancellation", "stage": "cancel"}\'::jsonb,'
        " cancel_requested_at = now() WHERE run_id = $1",
        run_id,
    )


async def _row(pool: asyncpg.Pool, run_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", run_id)
    assert row is not None
    return row


async def _status(client: Client, run_id: uuid.UUID) -> WorkflowExecutionStatus | None:
    described = await client.get_workflow_handle(workflow_id_for(str(run_id))).describe()
    return described.status


async def test_canceled_run_whose_workflow_never_closes_is_terminated(
    pool: asyncpg.Pool, temporal_client: Client, tenant: uuid.UUID, add_run: Any,
    failing_tasks: Any,
) -> None:  # fmt: skip
    zombie = await add_run()
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2 WHERE run_id = $1",
        zombie, await failing_tasks.start(zombie),
    )  # fmt: skip
    # a workflow that processes the cancel and closes by itself
    healthy = await add_run()
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2 WHERE run_id = $1",
        healthy, await failing_tasks.start(healthy),
    )  # fmt: skip
    failing_tasks.fix(healthy)
    never_started = await add_run()
    for run_id, temporal in ((zombie, True), (healthy, True), (never_started, False)):
        await _cancel(pool, temporal_client, run_id, temporal)
    canceled_at = time.monotonic()
    job = CancelEnforcementJob(
        pool, temporal_client, CancelEnforcementConfig(grace_s=2, tenants=(tenant,))
    )

    # inside the grace period nothing is touched
    assert (await job.run_pass(asyncio.Event())).counts == {}
    assert await _status(temporal_client, zombie) == WorkflowExecutionStatus.RUNNING

    await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - canceled_at)))
    result = await job.run_pass(asyncio.Event())
    assert result.counts == {"terminated": 1, "closed": 1, "gone": 1}

    assert await _status(temporal_client, zombie) == WorkflowExecutionStatus.TERMINATED
    assert await _status(temporal_client, healthy) == WorkflowExecutionStatus.CANCELED
    row = await _row(pool, zombie)
    assert row["status"] == "CANCELED"
    assert row["cancel_requested_at"] is None
    error = row["error_json"]
    assert error["stage"] == "cancel"  # the cancel's own error stays
    terminated = error["workflowTerminated"]
    assert "did not close within 2 s" in terminated["reason"]
    assert terminated["graceSeconds"] == 2
    assert terminated["temporalRunId"] == row["temporal_run_id"]
    logs = await pool.fetch(
        "SELECT level, message FROM workflow_run_logs WHERE run_id = $1 AND source = 'sweeper'",
        zombie,
    )
    assert [(log["level"], "terminated" in log["message"]) for log in logs] == [("ERROR", True)]
    for settled in (healthy, never_started):
        row = await _row(pool, settled)
        assert row["cancel_requested_at"] is None
        assert "workflowTerminated" not in row["error_json"]

    # every mark is settled: the next pass has nothing to do
    assert (await job.run_pass(asyncio.Event())).counts == {}


async def test_temporal_down_leaves_the_mark_for_a_later_pass(
    pool: asyncpg.Pool, tenant: uuid.UUID, add_run: Any
) -> None:
    unreachable = await connect_temporal(
        f"127.0.0.1:{free_port()}", "default", claims=None, lazy=True
    )
    first, second = await add_run(), await add_run()
    for run_id in (first, second):
        await _cancel(pool, unreachable, run_id, temporal=False)
    job = CancelEnforcementJob(
        pool, unreachable,
        CancelEnforcementConfig(grace_s=0, temporal_timeout_s=2, tenants=(tenant,)),
    )  # fmt: skip
    # one failure and the pass stops calling Temporal
    assert (await job.run_pass(asyncio.Event())).counts == {"retry_later": 1}
    for run_id in (first, second):
        assert (await _row(pool, run_id))["cancel_requested_at"] is not None
