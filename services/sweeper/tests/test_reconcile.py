"""Launch reconciliation against real Postgres and Temporal: unstarted runs get started (or fail
visibly after the deadline), child runs are left to their parent, lost workflows are flagged."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from stepwise_contract.names import TASK_QUEUE, WORKFLOW_TYPE, workflow_id_for
from stepwise_contract.platform.launch import priority_of, run_input_for, start_run
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_devkit.child_process import free_port
from stepwise_sweeper.jobs.reconcile import ReconcileConfig, ReconcileJob
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode


@pytest.fixture
async def started_workflows(temporal_client: Client) -> AsyncIterator[list[str]]:
    """Workflow ids a test caused to exist; terminated afterwards so no worker of a later test
    picks them up."""
    ids: list[str] = []
    yield ids
    for workflow_id in ids:
        with contextlib.suppress(RPCError):  # already closed
            await temporal_client.get_workflow_handle(workflow_id).terminate("sweeper test done")


async def _workflow_exists(client: Client, run_id: uuid.UUID) -> bool:
    try:
        await client.get_workflow_handle(workflow_id_for(str(run_id))).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND
        return False
    return True


async def _run(pool: asyncpg.Pool, run_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", run_id)
    assert row is not None
    return row


async def _sweeper_logs(pool: asyncpg.Pool, run_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT level, message, context_json FROM workflow_run_logs"
        " WHERE run_id = $1 AND source = 'sweeper' ORDER BY created_at",
        run_id,
    )


async def _start_placeholder(client: Client, run_id: uuid.UUID) -> str:
    """A workflow under the run's id on a queue nobody polls: it exists, and nothing runs it."""
    handle = await client.start_workflow(
        "SweeperPlaceholder", id=workflow_id_for(str(run_id)), task_queue=f"nobody-{uuid.uuid4()}"
    )
    assert handle.result_run_id is not None
    return handle.result_run_id


async def test_unstarted_run_is_started_and_recorded(
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant: uuid.UUID,
    add_run: Any,
    started_workflows: list[str],
) -> None:
    stranded = await add_run(age_s=5, priority=2)
    await pool.execute("UPDATE tenants SET fairness_weight = 2.5 WHERE tenant = $1", tenant)
    fresh = await add_run(age_s=0)  # inside the grace period: the API may still be starting it
    # crashed after the start, before recording it: the start must be found, not duplicated
    half = await add_run(age_s=5)
    started_workflows.extend(workflow_id_for(str(r)) for r in (stranded, fresh, half))
    half_row = await _run(pool, half)
    existing_run_id = await start_run(
        temporal_client, run_input_for(half_row), priority_of({**half_row, "fairness_weight": 1.0})
    )
    job = ReconcileJob(pool, temporal_client, ReconcileConfig(grace_s=2, tenants=(tenant,)))

    result = await job.run_pass(asyncio.Event())

    assert result.counts.get("started") == 2
    row = await _run(pool, stranded)
    description = await temporal_client.get_workflow_handle(
        workflow_id_for(str(stranded))
    ).describe()
    assert description.workflow_type == WORKFLOW_TYPE
    assert description.task_queue == TASK_QUEUE
    # the reconciled start carries the run's priority and its tenant's fair share
    priority = description.raw_description.workflow_execution_info.priority
    assert (priority.priority_key, priority.fairness_key) == (2, str(tenant))
    assert priority.fairness_weight == pytest.approx(2.5)
    assert row["temporal_run_id"] == description.run_id
    assert row["launch_attempts"] == 1
    assert row["status"] in ("RUNNING", "WAITING", "SUCCEEDED", "FAILED")  # a worker may run it
    logs = await _sweeper_logs(pool, stranded)
    assert [log["level"] for log in logs] == ["WARN"]
    assert "launch reconciliation" in logs[0]["message"]

    assert (await _run(pool, half))["temporal_run_id"] == existing_run_id
    assert (await _run(pool, fresh))["temporal_run_id"] is None
    assert not await _workflow_exists(temporal_client, fresh)

    # the next pass has nothing left to do for this tenant
    again = await job.run_pass(asyncio.Event())
    assert again.counts.get("started") is None


async def test_start_failing_until_the_deadline_fails_the_run(
    pool: asyncpg.Pool, tenant: uuid.UUID, add_run: Any
) -> None:
    unreachable = await connect_temporal(
        f"127.0.0.1:{free_port()}", "default", claims=None, lazy=True
    )
    run_id = await add_run(age_s=1.1)
    # a second one in the same pass: once Temporal failed, it is not called again this pass
    next_run_id = await add_run(age_s=1.0)
    config = ReconcileConfig(grace_s=0.2, deadline_s=2.5, start_timeout_s=2, tenants=(tenant,))
    job = ReconcileJob(pool, unreachable, config)

    first = await job.run_pass(asyncio.Event())
    assert first.counts.get("retry_later") == 2
    assert first.counts.get("check_skipped") == 1  # no "workflow not found" verdicts while down
    row = await _run(pool, run_id)
    assert (row["status"], row["temporal_run_id"], row["launch_attempts"]) == ("RUNNING", None, 1)
    assert (await _run(pool, next_run_id))["launch_attempts"] == 0

    await asyncio.sleep(1.6)
    second = await job.run_pass(asyncio.Event())
    assert second.counts.get("failed") == 2
    row = await _run(pool, run_id)
    assert row["status"] == "FAILED"
    assert row["completed_at"] is not None
    assert row["launch_attempts"] == 2
    error = row["error_json"]
    assert error["stage"] == "launch"
    assert error["category"] == "TransientError"
    assert "could not be started within 2.5 s" in error["message"]
    assert "Failed client connect" in error["message"]
    logs = await _sweeper_logs(pool, run_id)
    assert [log["level"] for log in logs] == ["ERROR"]
    assert logs[0]["context_json"]["stage"] == "launch"
    assert (await _run(pool, next_run_id))["error_json"]["stage"] == "launch"


async def test_child_runs_are_left_to_their_parent(
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant: uuid.UUID,
    add_run: Any,
    started_workflows: list[str],
) -> None:
    parent = await add_run(age_s=0, temporal_run_id="parent-run")
    child = await add_run(age_s=5, parent_run_id=parent)
    adopted = await add_run(age_s=5, parent_run_id=parent)
    started_workflows.extend(workflow_id_for(str(r)) for r in (child, adopted))
    # the worker started this child workflow but has not recorded it yet
    adopted_run_id = await _start_placeholder(temporal_client, adopted)
    job = ReconcileJob(pool, temporal_client, ReconcileConfig(grace_s=2, tenants=(tenant,)))

    result = await job.run_pass(asyncio.Event())

    assert result.counts.get("child_pending") == 1
    assert result.counts.get("adopted") == 1
    assert (await _run(pool, adopted))["temporal_run_id"] == adopted_run_id
    row = await _run(pool, child)
    assert (row["status"], row["temporal_run_id"], row["launch_attempts"]) == ("RUNNING", None, 0)
    assert not await _workflow_exists(temporal_client, child)

    # the parent ended without starting it: nothing ever will
    await pool.execute(
        "UPDATE workflow_runs SET status = 'FAILED', completed_at = now() WHERE run_id = $1", parent
    )
    await job.run_pass(asyncio.Event())
    row = await _run(pool, child)
    assert row["status"] == "FAILED"
    assert row["error_json"]["stage"] == "launch"
    assert "parent run is FAILED" in row["error_json"]["message"]
    assert not await _workflow_exists(temporal_client, child)


async def test_started_runs_whose_workflow_is_gone_are_flagged(
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant: uuid.UUID,
    add_run: Any,
    started_workflows: list[str],
) -> None:
    lost = await add_run(age_s=5, temporal_run_id="never-existed")
    lost_waiting = await add_run(age_s=5, status="WAITING", temporal_run_id="never-existed")
    alive = await add_run(age_s=5, temporal_run_id="placeholder")
    terminated = await add_run(age_s=5, temporal_run_id="placeholder")
    started_workflows.extend(workflow_id_for(str(r)) for r in (alive, terminated))
    await _start_placeholder(temporal_client, alive)
    await _start_placeholder(temporal_client, terminated)
    await temporal_client.get_workflow_handle(workflow_id_for(str(terminated))).terminate("ops")
    await asyncio.sleep(2.1)  # the termination is older than the grace period
    young = await add_run(age_s=0, temporal_run_id="not-yet-visible")
    job = ReconcileJob(
        pool, temporal_client, ReconcileConfig(grace_s=2, check_batch_size=2, tenants=(tenant,))
    )

    # a small check batch: the cursor walks all open runs over several passes
    for _ in range(4):
        await job.run_pass(asyncio.Event())

    for run_id in (lost, lost_waiting):
        row = await _run(pool, run_id)
        assert row["status"] == "FAILED"
        assert row["error_json"]["stage"] == "launch"
        assert "does not exist" in row["error_json"]["message"]
        assert [log["level"] for log in await _sweeper_logs(pool, run_id)] == ["ERROR"]
    row = await _run(pool, terminated)
    assert row["status"] == "FAILED"
    assert row["error_json"]["stage"] == "execution"
    assert row["error_json"]["temporalStatus"] == WorkflowExecutionStatus.TERMINATED.name
    assert (await _run(pool, alive))["status"] == "RUNNING"
    assert (await _run(pool, young))["status"] == "RUNNING"
