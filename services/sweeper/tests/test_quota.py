"""Quota resume scan against real Postgres and Temporal: quota-paused runs resume when the limit is
raised, oldest first and never beyond the capacity, even with two sweepers scanning at once.

Each paused run has a probe workflow under the run's workflow id, on its own task queue, recording
the QuotaResume signals it receives — the interpreter is not needed to see what was delivered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from stepwise_contract.names import SIGNAL_QUOTA_RESUME, workflow_id_for
from stepwise_contract.payloads import QuotaResumeSignal
from stepwise_sweeper.jobs.quota import QuotaConfig, QuotaJob
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


@workflow.defn(name="SweeperQuotaProbe")
class QuotaProbe:
    def __init__(self) -> None:
        self.received: list[QuotaResumeSignal] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=SIGNAL_QUOTA_RESUME)
    def quota_resume(self, signal: QuotaResumeSignal) -> None:
        self.received.append(signal)

    @workflow.query(name="received")
    def signals(self) -> list[QuotaResumeSignal]:
        return self.received


@pytest.fixture
async def probe_queue(temporal_client: Client) -> AsyncIterator[str]:
    queue = f"sweeper-quota-probe-{uuid.uuid4()}"
    worker = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[QuotaProbe],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        yield queue


async def _pause_run(
    pool: asyncpg.Pool,
    client: Client,
    queue: str,
    add_run: Any,
    tenant: uuid.UUID,
    minutes_ago: int,
) -> tuple[uuid.UUID, uuid.UUID, WorkflowHandle[Any, Any]]:
    """A run paused for quota as the worker leaves it: WAITING, an open quota wait, QuotaExceeded."""
    run_id = await add_run(age_s=3600, status="WAITING", temporal_run_id="probe")
    handle = await client.start_workflow(
        QuotaProbe.run, id=workflow_id_for(str(run_id)), task_queue=queue,
        execution_timeout=timedelta(minutes=5),
    )  # fmt: skip
    wait_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, status,"
        " created_at) VALUES ($1, $2, $3, 'root.1', 'quota', 'WAITING',"
        " now() - make_interval(mins => $4))",
        wait_id, tenant, run_id, minutes_ago,
    )  # fmt: skip
    await pool.execute(
        "UPDATE workflow_runs SET error_json = $2, node_path = 'root.1' WHERE run_id = $1",
        run_id, {"category": "QuotaExceeded", "message": "quota"},
    )  # fmt: skip
    return run_id, wait_id, handle


async def _set_usage(pool: asyncpg.Pool, tenant: uuid.UUID, limit: int | None, used: int) -> None:
    await pool.execute("UPDATE tenants SET step_quota_limit = $2 WHERE tenant = $1", tenant, limit)
    await pool.execute(
        "INSERT INTO workflow_step_usage_periods (tenant, period_start, period_end, used_count)"
        " VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
        "         (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC', $2)"
        " ON CONFLICT (tenant, period_start) DO UPDATE SET used_count = EXCLUDED.used_count",
        tenant, used,
    )  # fmt: skip


async def _received(handle: WorkflowHandle[Any, Any]) -> list[QuotaResumeSignal]:
    # the method's return annotation types the result (and tells the converter what to decode)
    return await handle.query(QuotaProbe.signals)


async def _state(pool: asyncpg.Pool, run_id: uuid.UUID, wait_id: uuid.UUID) -> tuple[str, str, Any]:
    row = await pool.fetchrow(
        "SELECT r.status AS run, w.status AS wait, r.error_json FROM workflow_runs r"
        " JOIN workflow_run_waits w ON w.run_id = r.run_id WHERE r.run_id = $1 AND w.wait_id = $2",
        run_id, wait_id,
    )  # fmt: skip
    assert row is not None
    return row["run"], row["wait"], row["error_json"]


async def test_paused_runs_resume_oldest_first_within_capacity(
    pool: asyncpg.Pool,
    temporal_client: Client,
    probe_queue: str,
    tenant: uuid.UUID,
    add_run: Any,
) -> None:
    # five paused runs; index 0 is the oldest pause
    paused = [
        await _pause_run(pool, temporal_client, probe_queue, add_run, tenant, minutes_ago=50 - i)
        for i in range(5)
    ]
    await _set_usage(pool, tenant, limit=10, used=10)
    job = QuotaJob(pool, temporal_client, QuotaConfig(batch_size=2, tenants=(tenant,)))

    exhausted = await job.run_pass(asyncio.Event())
    assert exhausted.counts.get("resumed") == 0
    assert [await _received(h) for _, _, h in paused] == [[]] * 5

    # the limit is raised by 3: the three oldest resume (over two claim batches), no more
    await _set_usage(pool, tenant, limit=13, used=10)
    raised = await job.run_pass(asyncio.Event())
    assert raised.counts.get("resumed") == 3
    for index, (run_id, wait_id, handle) in enumerate(paused):
        signals = await _received(handle)
        if index < 3:
            assert signals == [
                QuotaResumeSignal(
                    wait_id=str(wait_id), reason="quota_available", resumed_by="sweeper"
                )
            ]
            assert await _state(pool, run_id, wait_id) == ("RUNNING", "RESOLVED", None)
            log = await pool.fetchrow(
                "SELECT level, step_path FROM workflow_run_logs WHERE run_id = $1 AND source = 'sweeper'",
                run_id,
            )
            assert log is not None and (log["level"], log["step_path"]) == ("INFO", "root.1")
        else:
            assert signals == []
            run, wait, error = await _state(pool, run_id, wait_id)
            assert (run, wait, error["category"]) == ("WAITING", "WAITING", "QuotaExceeded")

    # the resumed runs' steps took the capacity (the worker re-reserves): nothing more to resume
    await _set_usage(pool, tenant, limit=13, used=13)
    assert (await job.run_pass(asyncio.Event())).counts.get("resumed") == 0
    # unlimited: everything left resumes
    await _set_usage(pool, tenant, limit=None, used=13)
    assert (await job.run_pass(asyncio.Event())).counts.get("resumed") == 2
    assert [len(await _received(h)) for _, _, h in paused] == [1] * 5
    for _, _, handle in paused:
        await handle.terminate("sweeper test done")


async def test_two_sweepers_never_resume_beyond_capacity(
    pool: asyncpg.Pool,
    temporal_client: Client,
    probe_queue: str,
    tenant: uuid.UUID,
    add_run: Any,
) -> None:
    paused = [
        await _pause_run(pool, temporal_client, probe_queue, add_run, tenant, minutes_ago=30 - i)
        for i in range(6)
    ]
    await _set_usage(pool, tenant, limit=5, used=2)
    config = QuotaConfig(batch_size=1, tenants=(tenant,))

    class SlowSignals(QuotaJob):
        """Holds the tenant for a few seconds, so the passes overlap even on a loaded machine
        (one that starts after the other has finished legitimately sees the capacity the
        resumed runs have not consumed yet: the worker's reservation is the authority)."""

        async def _signal(self, row: Any) -> bool:
            await asyncio.sleep(1.0)
            return await super()._signal(row)

    jobs = [SlowSignals(pool, temporal_client, config) for _ in range(2)]

    results = await asyncio.gather(*(job.run_pass(asyncio.Event()) for job in jobs))

    assert sorted(r.counts.get("tenant_busy", 0) for r in results) == [0, 1]
    assert sum(r.counts.get("resumed", 0) for r in results) == 3
    received = [len(await _received(h)) for _, _, h in paused]
    assert received == [1, 1, 1, 0, 0, 0]
    for _, _, handle in paused:
        await handle.terminate("sweeper test done")
