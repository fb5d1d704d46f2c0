"""Workflow-task failures against real Postgres and a real Temporal dev server: a workflow whose
task raises is recorded on its run within seconds, counted by the gauge, cleared once fixed or
once the run ends; only open runs of Stepwise are reported; replicas do not double-process."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_contract.task_failures import decode_failure
from stepwise_devkit.child_process import free_port
from stepwise_sweeper.jobs.task_failures import PASS_LOCK, TaskFailuresConfig, TaskFailuresJob
from stepwise_sweeper.metrics import SweeperMetrics
from stepwise_sweeper.scheduler import ScheduledJob, Scheduler
from temporalio.client import Client


async def wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.2)


async def _failure(pool: asyncpg.Pool, run_id: uuid.UUID) -> Any:
    return await pool.fetchval(
        "SELECT workflow_task_failure_json FROM workflow_runs WHERE run_id = $1", run_id
    )


async def _logs(pool: asyncpg.Pool, run_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT level, message, context_json FROM workflow_run_logs"
        " WHERE run_id = $1 AND source = 'sweeper' ORDER BY created_at",
        run_id,
    )


@pytest.fixture
async def sweeping(
    pool: asyncpg.Pool, temporal_client: Client, tenant: uuid.UUID
) -> AsyncIterator[CollectorRegistry]:
    """The job on a 0.5 s interval in the background, as the service schedules it."""
    registry = CollectorRegistry()
    job = TaskFailuresJob(pool, temporal_client, TaskFailuresConfig(tenants=(tenant,)))
    scheduler = Scheduler(
        [ScheduledJob(job=job, interval_s=0.5)], on_pass=SweeperMetrics(registry).record_pass
    )
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    yield registry
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_failing_task_is_recorded_counted_and_cleared_when_fixed(
    pool: asyncpg.Pool, add_run: Any, failing_tasks: Any, sweeping: CollectorRegistry
) -> None:
    run_id = await add_run()
    started = time.monotonic()
    temporal_run_id = await failing_tasks.start(run_id)
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2 WHERE run_id = $1", run_id, temporal_run_id
    )
    # a failing workflow whose run belongs to nobody here, and one whose run has ended
    stranger = uuid.uuid4()
    await failing_tasks.start(stranger)
    ended = await add_run(status="SUCCEEDED")
    await failing_tasks.start(ended)

    stored = await wait_for(lambda: _failure(pool, run_id), 10, "failure recorded")
    assert time.monotonic() - started < 10
    failure = decode_failure(stored)
    assert failure is not None
    assert failure.message == "RuntimeError: workflow code bug on purpose"
    assert failure.failure_type == "RuntimeError"
    assert failure.cause == "WorkflowWorkerUnhandledFailure"
    assert failure.attempts >= 2
    assert failure.since <= datetime.now(UTC)
    assert await _failure(pool, ended) is None

    def gauge() -> float | None:
        return sweeping.get_sample_value("stepwise_runs_workflow_task_failing")

    await wait_for(lambda: asyncio.sleep(0, gauge() == 1), 5, "gauge counts the run")

    # attempts move on (1 s task timeout) while the streak, its message and its one log line stay
    async def more_attempts() -> bool:
        newer = decode_failure(await _failure(pool, run_id))
        return newer is not None and newer.attempts > failure.attempts

    await wait_for(more_attempts, 15, "attempts refreshed")
    newer = decode_failure(await _failure(pool, run_id))
    assert newer is not None and newer.since == failure.since
    logs = await _logs(pool, run_id)
    assert [(log["level"], log["context_json"]["cause"]) for log in logs] == [
        ("WARN", "WorkflowWorkerUnhandledFailure")
    ]
    assert "workflow code bug on purpose" in logs[0]["message"]

    failing_tasks.fix(run_id)

    async def cleared() -> bool:
        return await _failure(pool, run_id) is None

    await wait_for(cleared, 30, "failure cleared after the fix")
    await wait_for(lambda: asyncio.sleep(0, gauge() == 0), 5, "gauge back to 0")
    logs = await _logs(pool, run_id)
    assert [log["level"] for log in logs] == ["WARN", "INFO"]
    assert "recovered" in logs[1]["message"]


async def test_ended_run_is_cleared_without_recovery_line(
    pool: asyncpg.Pool, temporal_client: Client, tenant: uuid.UUID, add_run: Any,
    failing_tasks: Any,
) -> None:  # fmt: skip
    run_id = await add_run()
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2 WHERE run_id = $1",
        run_id, await failing_tasks.start(run_id),
    )  # fmt: skip
    job = TaskFailuresJob(pool, temporal_client, TaskFailuresConfig(tenants=(tenant,)))

    async def recorded() -> bool:
        result = await job.run_pass(asyncio.Event())
        return result.counts.get("recorded") == 1

    await wait_for(recorded, 10, "recorded")
    await pool.execute(
        "UPDATE workflow_runs SET status = 'FAILED', completed_at = now() WHERE run_id = $1", run_id
    )
    result = await job.run_pass(asyncio.Event())
    assert result.counts.get("cleared") == 1
    assert result.gauges == {"workflow_task_failing": 0}
    assert await _failure(pool, run_id) is None
    assert [log["level"] for log in await _logs(pool, run_id)] == ["WARN"]


async def test_second_replica_skips_the_pass_while_one_holds_it(
    pool: asyncpg.Pool, temporal_client: Client, tenant: uuid.UUID, add_run: Any
) -> None:
    run_id = await add_run()
    failure = {"message": "x", "attempts": 3, "since": datetime.now(UTC).isoformat()}
    await pool.execute(
        "UPDATE workflow_runs SET workflow_task_failure_json = $2 WHERE run_id = $1",
        run_id, failure,
    )  # fmt: skip
    job = TaskFailuresJob(pool, temporal_client, TaskFailuresConfig(tenants=(tenant,)))
    async with pool.acquire() as holder:
        assert await holder.fetchval(PASS_LOCK)
        try:
            result = await job.run_pass(asyncio.Event())
        finally:
            with contextlib.suppress(Exception):
                await holder.execute("SELECT pg_advisory_unlock_all()")
    assert result.counts == {"busy": 1}
    # the skipped pass still reports the level, and changed nothing
    assert result.gauges == {"workflow_task_failing": 1}
    assert await _failure(pool, run_id) is not None
    # the lock holder's pass: the run is not flagged in Temporal, so the stale record is cleared
    result = await job.run_pass(asyncio.Event())
    assert result.counts.get("cleared") == 1
    assert await _failure(pool, run_id) is None


async def test_temporal_down_keeps_what_is_recorded(
    pool: asyncpg.Pool, tenant: uuid.UUID, add_run: Any
) -> None:
    unreachable = await connect_temporal(
        f"127.0.0.1:{free_port()}", "default", claims=None, lazy=True
    )
    failure = {"message": "x", "attempts": 3, "since": datetime.now(UTC).isoformat()}
    open_run, ended = await add_run(), await add_run(status="FAILED")
    for run_id in (open_run, ended):
        await pool.execute(
            "UPDATE workflow_runs SET workflow_task_failure_json = $2 WHERE run_id = $1",
            run_id, failure,
        )  # fmt: skip
    job = TaskFailuresJob(
        pool, unreachable, TaskFailuresConfig(temporal_timeout_s=2, tenants=(tenant,))
    )
    result = await job.run_pass(asyncio.Event())
    assert result.counts == {"temporal_unavailable": 1, "cleared": 1}
    assert result.gauges == {"workflow_task_failing": 1}
    # unknown is not recovered: the open run keeps its warning; the ended run loses it
    assert await _failure(pool, open_run) is not None
    assert await _failure(pool, ended) is None
