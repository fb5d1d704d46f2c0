"""Postgres side of the step quota (SPEC §5.5): reserve a unit, pause a run, resume it.

The reservation is also offered as SQL fragments (`quota_ctes`, `quota_figures`) so the step-start
projection reserves a unit and writes the step's row in one statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg
from temporalio import activity

from stepwise_worker import metrics
from stepwise_worker import wait_messages as names
from stepwise_worker.activities.command_tag import rows_changed
from stepwise_worker.activities.wait_store import INSERT_WAIT, RESOLVE_WAIT
from stepwise_worker.wait_messages import (
    Done,
    PauseForQuota,
    QuotaReservation,
    ReserveQuota,
    ResumeFromQuota,
)

QUOTA_REASON: Final = "workflow_step_quota_exceeded"
QUOTA_MESSAGE: Final = "Workflow step quota exceeded for current billing period"


# Quota reservation as two CTEs, `lim` (the tenant's limit and current period: the UTC calendar
# month) and `reserved` (one row when a unit was reserved), to splice into a statement.
# The limit is read from `tenants` at each reservation, so a raised limit takes effect at once; a
# tenant without a row (or a NULL limit) is unlimited but still counted.
# ON CONFLICT … DO UPDATE … WHERE locks the counter row and re-checks on its latest version, so
# concurrent reservations never exceed the limit.
def quota_ctes(tenant: str, gate: str = "true") -> str:
    """`lim` and `reserved` for tenant parameter `tenant`, reserving only when `gate` holds."""
    return f"""lim AS (
    SELECT (SELECT step_quota_limit FROM tenants WHERE tenant = {tenant}) AS quota,
           date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS p_start,
           (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')
               AT TIME ZONE 'UTC' AS p_end
), reserved AS (
    INSERT INTO workflow_step_usage_periods AS u
        (tenant, period_start, period_end, effective_limit, used_count)
    SELECT {tenant}, lim.p_start, lim.p_end, lim.quota, 1
    FROM lim WHERE ({gate}) AND (lim.quota IS NULL OR lim.quota > 0)
    ON CONFLICT (tenant, period_start) DO UPDATE
        SET used_count = u.used_count + 1, effective_limit = excluded.effective_limit,
            updated_at = now()
        WHERE excluded.effective_limit IS NULL OR u.used_count < excluded.effective_limit
    RETURNING u.used_count, u.effective_limit
)"""


def quota_figures(tenant: str) -> str:
    """Select-list of the reservation's outcome (after `quota_ctes`); when refused, the figures
    come from the statement's snapshot (display only)."""
    return f"""(SELECT count(*) FROM reserved) = 1 AS quota_reserved,
       coalesce((SELECT effective_limit FROM reserved), (SELECT quota FROM lim)) AS quota_limit,
       coalesce((SELECT used_count FROM reserved),
                (SELECT used_count FROM workflow_step_usage_periods
                 WHERE tenant = {tenant} AND period_start = (SELECT p_start FROM lim)), 0)
           AS quota_used,
       (SELECT p_start FROM lim) AS quota_period_start,
       (SELECT p_end FROM lim) AS quota_period_end"""


RESERVE_STEP = f"""
WITH {quota_ctes("$1")}
SELECT {quota_figures("$1")}
"""


def reservation_of(row: asyncpg.Record) -> QuotaReservation:
    """The outcome of a statement that selected `quota_figures`."""
    return QuotaReservation(
        reserved=bool(row["quota_reserved"]),
        limit=row["quota_limit"],
        used=int(row["quota_used"]),
        period_start=row["quota_period_start"],
        period_end=row["quota_period_end"],
    )


PAUSE_RUN = """
UPDATE workflow_runs
SET status = 'WAITING', node_path = $3, error_json = $4, updated_at = now()
WHERE tenant = $1 AND run_id = $2 AND status IN ('RUNNING', 'WAITING')
"""

RESUME_RUN = """
UPDATE workflow_runs
SET status = 'RUNNING', error_json = NULL, updated_at = now()
WHERE tenant = $1 AND run_id = $2 AND status = 'WAITING'
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def reserve_step_unit(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str
) -> QuotaReservation:
    """Reserve one step start of the tenant's quota for the current period (SPEC §5.5)."""
    row = await conn.fetchrow(RESERVE_STEP, uuid.UUID(tenant_id))
    assert row is not None
    return reservation_of(row)


def quota_pause_payload(reservation: QuotaReservation) -> dict[str, Any]:
    """What a quota wait records (and the API's `quotaPause` shows)."""
    return {
        "reason": QUOTA_REASON,
        "periodStart": _iso(reservation.period_start),
        "periodEnd": _iso(reservation.period_end),
        "usedCount": reservation.used,
        "effectiveLimit": reservation.limit,
        "periodSource": "fallback_calendar",
        "limitSource": "tenant",
    }


class QuotaStore:
    """The local activities of the step quota."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def activities(self) -> list[Any]:
        """Every activity of this store, for `Worker(activities=…)`."""
        return [
            self.reserve_quota,
            self.pause_for_quota,
            self.resume_from_quota,
        ]

    @activity.defn(name=names.RESERVE_QUOTA)
    async def reserve_quota(self, req: ReserveQuota) -> QuotaReservation:
        return await reserve_step_unit(self._pool, req.tenant_id)

    @activity.defn(name=names.PAUSE_FOR_QUOTA)
    async def pause_for_quota(self, req: PauseForQuota) -> Done:
        """Run `WAITING` with a `quota` wait and a `QuotaExceeded` error (no step row yet)."""
        details = quota_pause_payload(req.reservation)
        error = {
            "category": "QuotaExceeded",
            "message": QUOTA_MESSAGE,
            "nodePath": req.step_path,
            "at": req.at.isoformat(),
            "code": "STEP_QUOTA_EXCEEDED",
            "details": details,
        }
        tenant, run = uuid.UUID(req.tenant_id), uuid.UUID(req.run_id)
        async with self._pool.acquire() as conn, conn.transaction():
            opened = await conn.execute(
                INSERT_WAIT,
                uuid.UUID(req.wait_id), tenant, run, req.step_path, "quota", None, None,
                req.reservation.period_end, details,
            )  # fmt: skip
            status = await conn.execute(PAUSE_RUN, tenant, run, req.step_path, error)
        if rows_changed(opened):  # once per pause, however often this local activity ran
            metrics.WAITS_OPENED.labels("quota").inc()
            metrics.QUOTA_PAUSES.inc()
        return Done(changed=rows_changed(status))

    @activity.defn(name=names.RESUME_FROM_QUOTA)
    async def resume_from_quota(self, req: ResumeFromQuota) -> Done:
        """The quota wait resolved and the run `RUNNING` again (the API may have done it first)."""
        tenant = uuid.UUID(req.tenant_id)
        async with self._pool.acquire() as conn, conn.transaction():
            closed = await conn.fetch(RESOLVE_WAIT, tenant, uuid.UUID(req.wait_id), "RESOLVED", {})
            status = await conn.execute(RESUME_RUN, tenant, uuid.UUID(req.run_id))
        metrics.record_closed_waits(closed)
        return Done(changed=rows_changed(status))
