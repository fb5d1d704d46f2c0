"""Test support for the long-lived steps: wait for projection rows, deliver signals as the router,
the API and the sweeper would (the contract signal types, straight to the workflow).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from stepwise_contract.names import SIGNAL_EVENT, SIGNAL_HUMAN_TASK, SIGNAL_QUOTA_RESUME
from stepwise_contract.payloads import EventSignal, HumanTaskSignal, QuotaResumeSignal
from temporalio.client import WorkflowHandle


async def wait_for_row(
    pool: asyncpg.Pool, sql: str, *args: Any, within_s: float = 15.0
) -> asyncpg.Record:
    """Poll until `sql` returns a row (e.g. the run's open wait); fails after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        row = await pool.fetchrow(sql, *args)
        if row is not None:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"no row after {within_s}s: {sql} {args}")
        await asyncio.sleep(0.05)


async def open_wait(
    pool: asyncpg.Pool, run_id: str, wait_type: str, *, within_s: float = 15.0
) -> asyncpg.Record:
    """The run's `WAITING` wait of `wait_type` (the newest), once it exists."""
    return await wait_for_row(
        pool,
        "SELECT * FROM workflow_run_waits WHERE run_id = $1 AND wait_type = $2"
        " AND status = 'WAITING' ORDER BY created_at DESC LIMIT 1",
        uuid.UUID(run_id),
        wait_type,
        within_s=within_s,
    )


async def send_event(
    handle: WorkflowHandle[Any, Any],
    event_name: str,
    payload: Any = None,
    *,
    key: str | None = None,
    event_id: str | None = None,
) -> str:
    event_id = event_id or str(uuid.uuid4())
    await handle.signal(
        SIGNAL_EVENT,
        EventSignal(event_id=event_id, event_name=event_name, correlation_key=key,
                    payload=payload if payload is not None else {}),
    )  # fmt: skip
    return event_id


async def complete_task(handle: WorkflowHandle[Any, Any], task_id: str, payload: Any) -> None:
    await handle.signal(SIGNAL_HUMAN_TASK, HumanTaskSignal(task_id=task_id, payload=payload))


async def resume_quota(handle: WorkflowHandle[Any, Any], wait_id: str) -> None:
    await handle.signal(
        SIGNAL_QUOTA_RESUME, QuotaResumeSignal(wait_id=wait_id, reason="test", resumed_by="test")
    )


async def buffer_event(
    pool: asyncpg.Pool,
    tenant_id: str,
    event_name: str,
    payload: Any = None,
    *,
    key: str = "",
    event_id: str | None = None,
) -> str:
    """Put an event in the recent-event buffer, as the router does before signalling waits."""
    event_id = event_id or str(uuid.uuid4())
    await pool.execute(
        "INSERT INTO workflow_recent_events (tenant, event_id, event_name, correlation_key,"
        " payload) VALUES ($1, $2, $3, $4, $5)",
        uuid.UUID(tenant_id), event_id, event_name, key, payload if payload is not None else {},
    )  # fmt: skip
    return event_id
