"""Operator controls of a run: cancel, replay, quota resume (SPEC §7).

Temporal is the execution authority, so a control acts on Temporal first and only then writes the
projections; when Temporal refuses, nothing in Postgres changes.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from stepwise_contract.enums import LogLevel, LogSource, Role, RunStatus
from stepwise_contract.names import SIGNAL_QUOTA_RESUME, workflow_id_for
from stepwise_contract.payloads import QuotaResumeSignal
from stepwise_contract.platform.run_logs import LogLine, write_run_log
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from stepwise_api import run_store
from stepwise_api.auth import Principal
from stepwise_api.errors import ApiError
from stepwise_api.launcher import Launched, Launcher, LaunchSpec
from stepwise_api.run_signals import signal_run

log = structlog.get_logger("stepwise_api.controls")
RPC_TIMEOUT = timedelta(seconds=5)


# at least three characters once surrounding whitespace is stripped
REASON_PATTERN = r"\S[\s\S]+\S"


def check_reason(reason: str) -> str:
    cleaned = reason.strip()
    if len(cleaned) < 3:
        raise ApiError(400, "INVALID_BODY", "reason must be at least 3 characters")
    return cleaned


async def cancel_run(
    pool: asyncpg.Pool,
    client: Client,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    reason: str,
    actor: str,
) -> None:
    run = await run_store.get_run_raw(pool, tenant, run_id)
    if RunStatus(run["status"]).terminal:
        raise ApiError(409, "RUN_TERMINAL", f"the run is already {run['status']}")
    never_started = run["temporal_run_id"] is None
    handle = client.get_workflow_handle(workflow_id_for(str(run_id)))
    try:
        await handle.cancel(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        # Not found while the row has no Temporal run id: the start never happened (the
        # sweeper would do it); marking the row CANCELED below is what stops it.
        if not (exc.status == RPCStatusCode.NOT_FOUND and never_started):
            raise _cancel_failed(run_id, exc) from None
    except Exception as exc:
        raise _cancel_failed(run_id, exc) from None
    async with pool.acquire() as conn, conn.transaction():
        updated = await conn.fetchval(
            # cancel_requested_at: the sweeper terminates the workflow if it is still running
            # after the grace period (one whose workflow task keeps failing never closes)
            "UPDATE workflow_runs SET status = 'CANCELED', node_path = NULL, completed_at = now(),"
            " updated_at = now(), error_json = $3, cancel_requested_at = now()"
            " WHERE tenant = $1 AND run_id = $2 AND status IN ('RUNNING', 'WAITING')"
            " RETURNING run_id",
            tenant,
            run_id,
            {
                "category": "Cancellation",
                "message": "Run canceled by operator",
                "reason": reason,
                "stage": "cancel",
            },
        )
        if updated is None:
            # The worker's own cancellation cleanup (started by the Temporal cancel above) may
            # have been first: the run is CANCELED as asked — not a conflict.
            status = await conn.fetchval(
                "SELECT status FROM workflow_runs WHERE tenant = $1 AND run_id = $2",
                tenant,
                run_id,
            )
            if status != RunStatus.CANCELED:
                raise ApiError(409, "RUN_TERMINAL", "the run finished before it could be canceled")
        await conn.execute(
            "UPDATE workflow_run_waits SET status = 'CANCELED', resolved_at = now()"
            " WHERE tenant = $1 AND run_id = $2 AND status = 'WAITING'",
            tenant,
            run_id,
        )
        await conn.execute(
            "UPDATE workflow_run_steps SET status = 'CANCELED', completed_at = now(),"
            " duration_ms = (extract(epoch FROM now() - started_at) * 1000)::int"
            " WHERE tenant = $1 AND run_id = $2 AND status = 'STARTED'",
            tenant,
            run_id,
        )
        await conn.execute(
            "UPDATE workflow_tasks SET status = 'CANCELED', updated_at = now()"
            " WHERE tenant = $1 AND run_id = $2 AND status = 'PENDING'",
            tenant,
            run_id,
        )
        await write_run_log(
            conn,
            LogSource.API,
            tenant=tenant,
            run_id=run_id,
            level=LogLevel.WARN,
            message="Run canceled by operator",
            context={"reason": reason, "by": actor},
        )
    if never_started:
        # A reconciliation start racing with us would have created the workflow just now.
        try:
            await handle.cancel(rpc_timeout=RPC_TIMEOUT)
        except Exception as exc:
            log.debug("post_cancel_retry_ignored", run_id=str(run_id), error=str(exc))


def _cancel_failed(run_id: uuid.UUID, exc: Exception) -> ApiError:
    log.warning("temporal_cancel_failed", run_id=str(run_id), error=str(exc))
    return ApiError(
        409,
        "WORKFLOW_TEMPORAL_CANCEL_FAILED",
        "Temporal could not cancel the run right now; nothing was changed",
        runId=str(run_id),
        error=str(exc)[:500],
    )


async def replay_run(
    pool: asyncpg.Pool,
    launcher: Launcher,
    principal: Principal,
    run_id: uuid.UUID,
    reason: str,
    payload: dict[str, Any] | None,
    priority: int | None = None,
) -> Launched:
    """A new run of the same workflow and pinned version; `payload=None` replays the original,
    unredacted input; `priority=None` keeps the original run's priority. The new run records the
    key that asked (`Principal.launched_by`)."""
    tenant = principal.tenant
    launched_by = principal.launched_by()
    run = await run_store.get_run_raw(pool, tenant, run_id)
    if payload is None:
        payload = run["input_json"] if isinstance(run["input_json"], dict) else {}
    new_run_id = uuid.uuid4()
    return await launcher.launch(
        LaunchSpec(
            tenant=tenant,
            workflow_id=run["workflow_id"],
            workflow_version=run["workflow_version"],
            payload=payload,
            trigger_metadata={
                "replayOfRunId": str(run_id),
                "reason": reason,
                **({"launchedBy": launched_by} if launched_by else {}),
            },
            event_type=run["event_type"],
            run_id=new_run_id,
            priority=run["priority"] if priority is None else priority,
            may_raise_priority=principal.role is Role.ADMIN,
            logs=(
                LogLine(
                    level=LogLevel.INFO,
                    message="Run replayed from previous run",
                    context={"sourceRunId": str(run_id), "reason": reason},
                ),
                LogLine(
                    level=LogLevel.INFO,
                    message="Run replay created",
                    context={"newRunId": str(new_run_id), "reason": reason},
                    run_id=run_id,
                ),
            ),
        )
    )


async def quota_resume(
    pool: asyncpg.Pool,
    client: Client,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    reason: str,
    actor: str,
) -> uuid.UUID:
    """Resume a quota-paused run when the tenant has step capacity; returns the wait id."""
    run = await run_store.get_run_raw(pool, tenant, run_id)
    wait = await pool.fetchrow(
        "SELECT wait_id FROM workflow_run_waits WHERE tenant = $1 AND run_id = $2"
        " AND wait_type = 'quota' AND status = 'WAITING' ORDER BY created_at LIMIT 1",
        tenant,
        run_id,
    )
    if run["status"] != RunStatus.WAITING or wait is None:
        raise ApiError(409, "RUN_NOT_QUOTA_PAUSED", "the run is not paused on the step quota")
    limit = await pool.fetchval("SELECT step_quota_limit FROM tenants WHERE tenant = $1", tenant)
    usage = await pool.fetchrow(
        "SELECT period_start, period_end, used_count FROM workflow_step_usage_periods"
        " WHERE tenant = $1 AND period_start <= now() AND period_end > now()"
        " ORDER BY period_start DESC LIMIT 1",
        tenant,
    )
    used = int(usage["used_count"]) if usage else 0
    if limit is not None and used >= limit:
        raise ApiError(
            409,
            "QUOTA_EXHAUSTED",
            f"the tenant has used {used} of {limit} steps in this period",
            quota={
                "usedCount": used,
                "limit": limit,
                "periodStart": usage["period_start"].isoformat() if usage else None,
                "periodEnd": usage["period_end"].isoformat() if usage else None,
            },
        )
    wait_id: uuid.UUID = wait["wait_id"]
    # The signal goes out inside the transaction: if Temporal refuses it, the projections roll
    # back; the worker's own projection of a new pause waits on our row lock, so it lands last.
    async with pool.acquire() as conn, conn.transaction():
        resolved = await conn.fetchval(
            "UPDATE workflow_run_waits SET status = 'RESOLVED', resolved_at = now()"
            " WHERE tenant = $1 AND wait_id = $2 AND status = 'WAITING' RETURNING wait_id",
            tenant,
            wait_id,
        )
        if resolved is None:
            raise ApiError(409, "RUN_NOT_QUOTA_PAUSED", "the quota pause was resolved meanwhile")
        await conn.execute(
            "UPDATE workflow_runs SET status = 'RUNNING', error_json = NULL, updated_at = now()"
            " WHERE tenant = $1 AND run_id = $2 AND status = 'WAITING'",
            tenant,
            run_id,
        )
        await write_run_log(
            conn,
            LogSource.API,
            tenant=tenant,
            run_id=run_id,
            level=LogLevel.INFO,
            message="Quota-paused run resumed by operator",
            context={"waitId": str(wait_id), "reason": reason, "by": actor},
        )
        await signal_run(
            client,
            run_id,
            SIGNAL_QUOTA_RESUME,
            QuotaResumeSignal(wait_id=str(wait_id), reason=reason, resumed_by=actor),
        )
    return wait_id
